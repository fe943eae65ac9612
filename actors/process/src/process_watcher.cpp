#include "process_watcher.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "relay/error.hpp"
#include "relay/log.hpp"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace relay {

int open_pidfd(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

process_watcher& process_watcher::instance() {
  static process_watcher watcher;
  return watcher;
}

process_watcher::process_watcher() {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_;
  ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
  thread_ = std::thread{[this] { run(); }};
}

process_watcher::~process_watcher() {
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_, &one, sizeof(one));
  if (thread_.joinable())
    thread_.join();
  for (auto& kvp : watched_)
    ::close(kvp.first);
  ::close(wake_);
  ::close(epoll_);
}

caf::error process_watcher::watch(int pidfd, exit_callback on_exit) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    watched_[pidfd] = std::move(on_exit);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = pidfd;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, pidfd, &ev) != 0) {
    auto err = errno;
    std::lock_guard<std::mutex> guard{mtx_};
    watched_.erase(pidfd);
    ::close(pidfd);
    return make_error(errc::invalid_argument,
                      std::string{"cannot watch a pidfd: "} + std::strerror(err));
  }
  return caf::none;
}

void process_watcher::run() {
  epoll_event events[16];
  for (;;) {
    auto n = ::epoll_wait(epoll_, events, 16, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      log(log_level::error, std::string{"process watcher: epoll_wait: "}
                              + std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      auto fd = events[i].data.fd;
      if (fd == wake_)
        return;
      siginfo_t info{};
      auto rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(fd),
                         &info, WEXITED | WNOHANG);
      if (rc == 0 && info.si_pid == 0)
        continue; // readable but not exited: spurious
      if (rc != 0) {
        // Reaped by someone else (a waitpid(-1) in the application): the
        // exit status is lost, the exit is not.
        log(log_level::warning, std::string{"process watcher: waitid: "}
                                  + std::strerror(errno));
        info = siginfo_t{};
      }
      exit_callback callback;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        auto j = watched_.find(fd);
        if (j != watched_.end()) {
          callback = std::move(j->second);
          watched_.erase(j);
        }
      }
      ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
      ::close(fd);
      if (callback)
        callback(info);
    }
  }
}

} // namespace relay
