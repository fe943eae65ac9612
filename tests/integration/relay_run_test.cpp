// relay-run with a deployment file, as real processes: children over a
// socketpair, a pair of pipes, uds and shm; kill -9 of a child, SIGHUP, SIGTERM to the root,
// kill -9 of the root, a child that never starts, a bad file. Synchronised
// on the lines the processes print and on pidfds; every wait bounded.

#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <map>
#include <set>

#include "child_process.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace relay {
namespace {

/// Whether `pid` runs: it exists in /proc and is not a zombie.
bool process_exists(pid_t pid) {
  std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  if (!std::getline(stat, line))
    return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size()
         && line[close + 2] != 'Z';
}

/// Waits up to `timeout` for `pid` (any process of this user) to end.
bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0)
    return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  auto rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
  ::close(fd);
  return rc == 1;
}

class relay_run : public ::testing::Test {
protected:
  void SetUp() override {
    // Orphans of a killed root come to this process, which reaps them (in
    // a container, PID 1 may not).
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    // relay_run makes its run directory under $TMPDIR: inside ours, so
    // that a root killed with -9 (which cannot remove it) leaks nothing.
    if (auto old = std::getenv("TMPDIR"))
      saved_tmpdir_ = old;
    ::setenv("TMPDIR", dir.path().c_str(), 1);
  }


  std::string write_deployment(const std::string& extra = "",
                               const std::string& child_args = "") {
    auto path = dir.path() + "/demo.toml";
    std::ofstream out{path};
    out << "[supervisor]\nname = \"demo\"\nintensity = 3\nperiod = \"5s\"\n";
    for (auto channel : {"socketpair", "pipe", "uds", "shm"}) {
      out << "\n[[process]]\nid = \"" << channel << "\"\nexecutable = \""
          << RELAY_PROCESS_CHILD << "\"\nchannel = \"" << channel
          << "\"\nshutdown = \"2s\"\nstart_timeout = \"5s\"\n";
      if (!child_args.empty())
        out << "args = [\"" << child_args << "\"]\n";
    }
    out << extra;
    return path;
  }

  /// Reads lines until `pred` holds for one (returned) or the bound.
  std::optional<std::string> read_until(test::child& c,
                                        const std::function<bool(const std::string&)>& pred,
                                        std::chrono::milliseconds bound = 10s) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      auto line = c.read_line(left);
      if (!line)
        return std::nullopt;
      seen.push_back(*line);
      if (line->rfind("ready ", 0) == 0)
        pids.insert(std::stoi(line->substr(6)));
      if (pred(*line))
        return line;
    }
    return std::nullopt;
  }

  /// Waits for `n` more "ready <pid>" lines; returns their pids.
  std::vector<pid_t> wait_ready(test::child& c, size_t n) {
    std::vector<pid_t> result;
    while (result.size() < n) {
      auto line = read_until(c, [](auto& l) { return l.rfind("ready ", 0) == 0; });
      if (!line)
        break;
      result.push_back(std::stoi(line->substr(6)));
    }
    return result;
  }

  void TearDown() override {
    // Reap what was reparented to us.
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    // Whatever happened, no process of the tree is left.
    for (auto pid : pids) {
      if (process_exists(pid)) {
        ADD_FAILURE() << "process " << pid << " survived";
        ::kill(pid, SIGKILL);
      }
    }
    if (HasFailure())
      for (auto& l : seen)
        std::printf("  | %s\n", l.c_str());
    if (saved_tmpdir_)
      ::setenv("TMPDIR", saved_tmpdir_->c_str(), 1);
    else
      ::unsetenv("TMPDIR");
  }

  test::temp_dir dir;
  std::optional<std::string> saved_tmpdir_;
  std::set<pid_t> pids;
  std::vector<std::string> seen;
};

TEST_F(relay_run, runs_restarts_passes_sighup_on_and_stops_on_sigterm) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the deployment's children use a 300 ms heartbeat timeout "
                  "(process_child_main), which instrumented start-ups miss; "
                  "process_child_test checks the same under the sanitizers";
#endif
  test::child root{{RELAY_RUN, write_deployment()}, true};
  ASSERT_TRUE(root.running());
  auto first = wait_ready(root, 4);
  ASSERT_EQ(first.size(), 4u);
  // kill -9 a worker: it is back and ready.
  auto killed_at = std::chrono::steady_clock::now();
  ::kill(first[1], SIGKILL);
  ASSERT_TRUE(read_until(root, [](auto& l) { return l.find("crashed") != std::string::npos; }));
  auto again = wait_ready(root, 1);
  ASSERT_EQ(again.size(), 1u);
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now()
                                                      - killed_at)
              .count();
  EXPECT_LT(ms, 1000.0);
  EXPECT_FALSE(process_exists(first[1]));
  // SIGHUP to the root reaches every running process.
  root.signal(SIGHUP);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(read_until(root, [](auto& l) { return l.rfind("hangup ", 0) == 0; }))
      << "hangup " << i;
  // SIGTERM: everything stops, the root exits 0, after its children.
  auto term_at = std::chrono::steady_clock::now();
  EXPECT_EQ(root.stop(SIGTERM, 15s), 0);
  auto term_ms = std::chrono::duration<double, std::milli>(
                   std::chrono::steady_clock::now() - term_at)
                   .count();
  for (auto pid : pids)
    EXPECT_FALSE(process_exists(pid)) << pid << " outlived the root";
  std::printf("SIGTERM to the root until the last process is gone: %.1f ms\n",
              term_ms);
}

TEST_F(relay_run, kill_9_of_the_root_leaves_no_process_of_the_tree) {
  test::child root{{RELAY_RUN, write_deployment()}, true};
  auto first = wait_ready(root, 4);
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(root.stop(SIGKILL, 5s), 128 + SIGKILL);
  for (auto pid : first)
    EXPECT_TRUE(wait_gone(pid, 5s)) << "process " << pid << " outlived its root";
}

TEST_F(relay_run, a_child_that_never_starts_makes_the_tree_give_up_clearly) {
  test::child root{{RELAY_RUN, write_deployment("", "--fail-at-start")}, true};
  auto gave_up = read_until(root, [](auto& l) {
    return l.find("the supervisor ended") != std::string::npos;
  });
  ASSERT_TRUE(gave_up);
  EXPECT_NE(gave_up->find("failed_to_start_child"), std::string::npos) << *gave_up;
  EXPECT_NE(gave_up->find("exit status 3"), std::string::npos) << *gave_up;
  EXPECT_EQ(root.stop(0, 10s), 1);
}

TEST_F(relay_run, a_child_that_crashes_after_every_start_exceeds_the_intensity) {
  test::child root{{RELAY_RUN, write_deployment("", "--exit-after-ready")}, true};
  // intensity 3 in 5 s: three restarts, the fourth crash is one too many.
  auto gave_up = read_until(root, [](auto& l) {
    return l.find("gave up: too many restarts") != std::string::npos;
  });
  ASSERT_TRUE(gave_up);
  EXPECT_NE(gave_up->find("exit status 4"), std::string::npos) << *gave_up;
  auto ended = read_until(root, [](auto& l) {
    return l.find("the supervisor ended") != std::string::npos;
  });
  ASSERT_TRUE(ended);
  EXPECT_NE(ended->find("user_shutdown"), std::string::npos) << *ended;
  EXPECT_EQ(root.stop(0, 10s), 1);
}

TEST_F(relay_run, a_bad_file_is_refused_with_its_line_and_key) {
  auto path = write_deployment("\n[[process]]\nid = \"x\"\nexecutable = \"/bin/true\"\n"
                               "restart = \"sometimes\"\n");
  test::child root{{RELAY_RUN, path}, true};
  auto line = read_until(root, [](auto&) { return true; });
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("demo.toml:"), std::string::npos) << *line;
  EXPECT_NE(line->find("process[4].restart: 'sometimes' is not permanent"),
            std::string::npos)
    << *line;
  EXPECT_EQ(root.stop(0, 10s), 2);
}

} // namespace
} // namespace relay
