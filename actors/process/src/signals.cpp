#include "relay/signals.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include <caf/send.hpp>

#include "relay/log.hpp"

namespace relay {

namespace {

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

} // namespace

signal_module::signal_module() = default;

signal_module::~signal_module() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (signal_fd_ >= 0)
    ::close(signal_fd_);
  if (stop_fd_ >= 0)
    ::close(stop_fd_);
}

std::string signal_module::name() const {
  return "relay.signals";
}

void signal_module::configure(node_config&) {
  auto set = handled_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void signal_module::start(node&) {
  auto set = handled_signals();
  // Also here: start() runs on the thread that made the node, which may not
  // be the one that configured it.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0)
    throw std::system_error(errno, std::generic_category(), "signalfd");
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0)
    throw std::system_error(errno, std::generic_category(), "eventfd");
  thread_ = std::thread{[this] { run(); }};
}

void signal_module::stop(node&) {
  if (!thread_.joinable())
    return;
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof(one));
  thread_.join();
}

void signal_module::run() {
  pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      log(log_level::error, std::string{"signals: poll: "} + std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0)
      return;
    signalfd_siginfo info{};
    while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
      auto sig = static_cast<int>(info.ssi_signo);
      std::vector<caf::actor> subscribers;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (sig == SIGHUP) {
          ++hangups_;
          subscribers = hangup_subscribers_;
        } else if (shutdown_signal_) {
          log(log_level::warning, std::string{"second "} + ::strsignal(sig)
                                    + ": exiting at once");
          std::_Exit(128 + sig);
        } else {
          shutdown_signal_ = sig;
        }
      }
      if (sig == SIGHUP) {
        log(log_level::info, "SIGHUP: telling "
                               + std::to_string(subscribers.size())
                               + " subscriber(s)");
        for (auto& s : subscribers)
          caf::anon_send(s, sighup_atom::value);
      } else {
        log(log_level::info, std::string{::strsignal(sig)}
                               + ": shutting down (again to exit at once)");
        cv_.notify_all();
      }
    }
  }
}

std::optional<int>
signal_module::wait_for_shutdown(std::optional<caf::timespan> timeout) {
  std::unique_lock<std::mutex> guard{mtx_};
  auto ready = [this] { return shutdown_signal_.has_value(); };
  if (timeout)
    cv_.wait_for(guard, *timeout, ready);
  else
    cv_.wait(guard, ready);
  return shutdown_signal_;
}

void signal_module::request_shutdown() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!shutdown_signal_)
      shutdown_signal_ = 0;
  }
  cv_.notify_all();
}

void signal_module::subscribe_hangup(const caf::actor& who) {
  std::lock_guard<std::mutex> guard{mtx_};
  hangup_subscribers_.push_back(who);
}

void signal_module::unsubscribe_hangup(const caf::actor& who) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& xs = hangup_subscribers_;
  xs.erase(std::remove(xs.begin(), xs.end(), who), xs.end());
}

uint64_t signal_module::hangups() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return hangups_;
}

} // namespace relay
