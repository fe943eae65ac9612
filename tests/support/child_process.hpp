#pragma once

// A child process for multi-process tests: its output read line by line
// with a bound, killed and reaped when the test ends, also on failure.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace relay::test {

using namespace std::chrono_literals;

/// A child process with its stdout on a pipe; killed and reaped on
/// destruction.
class child {
public:
  /// Runs `args`; its stdout (and stderr too with `merge_stderr`) is read
  /// with read_line; with `with_stdin`, write_line feeds its stdin.
  explicit child(std::vector<std::string> args, bool merge_stderr = false,
                 bool with_stdin = false) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
      return;
    int in[2] = {-1, -1};
    if (with_stdin && pipe2(in, O_CLOEXEC) != 0)
      return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    if (with_stdin)
      posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    if (merge_stderr)
      posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ)
        != 0)
      pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (with_stdin) {
      ::close(in[0]);
      in_ = in[1];
    }
  }

  /// Writes `line` and a newline to the child's stdin (if it has one).
  bool write_line(const std::string& line) {
    if (in_ < 0)
      return false;
    auto text = line + "\n";
    return ::write(in_, text.data(), text.size())
           == static_cast<ssize_t>(text.size());
  }

  pid_t pid() const {
    return pid_;
  }

  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0)
      ::close(out_);
    if (in_ >= 0)
      ::close(in_);
  }

  bool running() const {
    return pid_ > 0;
  }

  /// Sends `sig` (e.g. SIGSTOP, SIGCONT) without waiting.
  void signal(int sig) {
    if (pid_ > 0)
      ::kill(pid_, sig);
  }

  /// Reads one line of the child's stdout within `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto pos = buf_.find('\n'); pos != std::string::npos) {
        auto line = buf_.substr(0, pos);
        buf_.erase(0, pos + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return std::nullopt;
      char tmp[512];
      auto n = ::read(out_, tmp, sizeof(tmp));
      if (n <= 0)
        return std::nullopt;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  /// Sends `sig` and waits up to `timeout` for the exit status.
  std::optional<int> stop(int sig, std::chrono::milliseconds timeout = 10s) {
    if (sig != 0)
      ::kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    // Bounded wait for the child: its stdout closes when it exits.
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      auto r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      pollfd p{out_, POLLIN, 0};
      poll(&p, 1, 50);
      char tmp[512];
      if (p.revents & POLLIN) {
        auto n = ::read(out_, tmp, sizeof(tmp));
        if (n > 0)
          buf_.append(tmp, static_cast<size_t>(n));
      }
    }
    return std::nullopt;
  }

private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  std::string buf_;
};


/// Reads `proc`'s lines (each within 60 s) until one starts with `prefix`;
/// returns the rest of that line, or nothing if none came.
inline std::optional<std::string> wait_line(child& proc,
                                            const std::string& prefix) {
  while (auto line = proc.read_line(std::chrono::seconds{60}))
    if (line->rfind(prefix, 0) == 0)
      return line->substr(prefix.size());
  return std::nullopt;
}

/// What a program run to its end printed, and how it ended.
struct run_result {
  /// Exit status (128 + signal if killed), -1 if it did not end in time.
  int status = -1;
  /// Its stdout and stderr together.
  std::string output;
};

/// Runs `args` to its end, bounded by `bound` per line and for its exit.
inline run_result run(std::vector<std::string> args,
                      std::chrono::milliseconds bound = 20s) {
  child proc{std::move(args), true};
  run_result result;
  while (auto line = proc.read_line(bound))
    result.output += *line + "\n";
  result.status = proc.stop(0, bound).value_or(-1);
  return result;
}

} // namespace relay::test
