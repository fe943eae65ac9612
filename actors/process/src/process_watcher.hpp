#pragma once

// Notices the exit of child processes at once: one thread per process
// waits on the pidfds of every process child (epoll) and reaps each child
// as soon as it exits (waitid on the pidfd), so no child stays a zombie.

#include <signal.h>

#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <caf/error.hpp>

namespace relay {

class process_watcher {
public:
  using exit_callback = std::function<void(const siginfo_t& info)>;

  /// The watcher of this process (started on first use).
  static process_watcher& instance();

  /// Takes ownership of `pidfd` (from pidfd_open) and calls `on_exit`
  /// once, on the watcher thread, after the process exited and was reaped.
  /// Errors: the descriptor cannot be watched (it is closed then).
  caf::error watch(int pidfd, exit_callback on_exit);

  ~process_watcher();

private:
  process_watcher();
  void run();

  int epoll_ = -1;
  int wake_ = -1;
  std::mutex mtx_;
  std::unordered_map<int, exit_callback> watched_;
  std::thread thread_;
};

/// pidfd_open(2). Returns -1 with errno on failure.
int open_pidfd(pid_t pid);

} // namespace relay
