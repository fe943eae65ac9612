#pragma once

// A loopback proxy that the test can order to cut every connection through
// it, for the reconnect tests: it listens on 127.0.0.1 (tcp) or on a Unix
// socket path (uds), connects each accepted client to the target, copies
// bytes both ways, and on cut() closes both ends of every pair at once (a
// tcp reset: SO_LINGER 0), in the middle of whatever was in flight. New
// connections are accepted as before. One thread, poll(); every socket and
// the socket file are closed or removed on destruction.

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace relay::test {

class cut_proxy {
public:
  /// Listens for a tcp target "127.0.0.1:port" (`uds` false) or a uds
  /// target path (`uds` true, listening on `listen_path`).
  cut_proxy(bool uds, std::string target, std::string listen_path = {})
    : uds_(uds), target_(std::move(target)), path_(std::move(listen_path)) {
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
      throw std::runtime_error("cut_proxy: pipe failed");
    listener_ = ::socket(uds ? AF_UNIX : AF_INET,
                         SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (uds) {
      auto sa = unix_address(path_);
      ::unlink(path_.c_str());
      if (::bind(listener_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
        throw std::runtime_error("cut_proxy: cannot bind " + path_);
    } else {
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(listener_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
        throw std::runtime_error("cut_proxy: cannot bind");
      socklen_t len = sizeof(sa);
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&sa), &len);
      port_ = ntohs(sa.sin_port);
    }
    if (::listen(listener_, 64) != 0)
      throw std::runtime_error("cut_proxy: cannot listen");
    thread_ = std::thread([this] { run(); });
  }

  ~cut_proxy() {
    stop_ = true;
    poke();
    thread_.join();
    for (auto& p : pairs_) {
      ::close(p.fd[0]);
      ::close(p.fd[1]);
    }
    for (auto fd : silent_)
      ::close(fd);
    ::close(listener_);
    if (uds_)
      ::unlink(path_.c_str());
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  cut_proxy(const cut_proxy&) = delete;
  cut_proxy& operator=(const cut_proxy&) = delete;

  /// The URI peers dial to go through the proxy.
  std::string uri() const {
    return uds_ ? "uds://" + path_ : "tcp://127.0.0.1:" + std::to_string(port_);
  }

  /// Closes every connection through the proxy now; returns how many.
  /// `client_side_only`: closes only the ends facing the dialing side and
  /// keeps the target's ends open, silent (a half-open connection: the
  /// target notices nothing until it hears from the dialer again).
  size_t cut(bool client_side_only = false) {
    half_ = client_side_only;
    cut_requested_ = true;
    poke();
    std::unique_lock<std::mutex> guard{mtx_};
    cut_done_cv_.wait(guard, [&] { return !cut_requested_.load(); });
    return last_cut_;
  }

  /// While held, connections are accepted and closed at once (the node
  /// behind is unreachable); existing ones are untouched.
  void hold(bool on) {
    held_ = on;
  }

  /// Connections accepted so far.
  size_t accepted() const {
    return accepted_.load();
  }

private:
  struct pair {
    int fd[2];              // client side, target side
    std::vector<char> buf[2]; // bytes read from fd[i], not yet written to fd[1-i]
  };

  static sockaddr_un unix_address(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof(sa.sun_path))
      throw std::runtime_error("cut_proxy: path too long");
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    return sa;
  }

  void poke() {
    char c = 1;
    [[maybe_unused]] auto n = ::write(wake_[1], &c, 1);
  }

  int dial_target() {
    int fd = ::socket(uds_ ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;
    if (uds_) {
      auto sa = unix_address(target_);
      rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    } else {
      auto colon = target_.rfind(':');
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      sa.sin_port = htons(static_cast<uint16_t>(std::stoi(target_.substr(colon + 1))));
      rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    }
    if (rc != 0) {
      ::close(fd);
      return -1;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
  }

  static void hard_close(int fd, bool tcp) {
    if (tcp) {
      linger lg{1, 0}; // reset, not an orderly close
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    ::close(fd);
  }

  void cut_all() {
    for (auto& p : pairs_) {
      hard_close(p.fd[0], !uds_);
      if (half_)
        silent_.push_back(p.fd[1]);
      else
        hard_close(p.fd[1], !uds_);
    }
    std::lock_guard<std::mutex> guard{mtx_};
    last_cut_ = pairs_.size();
    pairs_.clear();
    cut_requested_ = false;
    cut_done_cv_.notify_all();
  }

  // Moves bytes from p.fd[i] to p.fd[1 - i]; false if the pair ended.
  bool pump(pair& p, int i) {
    char chunk[65536];
    for (;;) {
      auto n = ::read(p.fd[i], chunk, sizeof(chunk));
      if (n > 0) {
        p.buf[i].insert(p.buf[i].end(), chunk, chunk + n);
        continue;
      }
      if (n == 0)
        return false;
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      return false;
    }
    return flush(p, i);
  }

  bool flush(pair& p, int i) {
    auto& b = p.buf[i];
    while (!b.empty()) {
      auto n = ::send(p.fd[1 - i], b.data(), b.size(), MSG_NOSIGNAL);
      if (n > 0) {
        b.erase(b.begin(), b.begin() + n);
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return true;
      return false;
    }
    return true;
  }

  void run() {
    while (!stop_) {
      if (cut_requested_)
        cut_all();
      std::vector<pollfd> fds;
      fds.push_back({wake_[0], POLLIN, 0});
      fds.push_back({listener_, POLLIN, 0});
      for (auto& p : pairs_)
        for (int i = 0; i < 2; ++i) {
          short ev = POLLIN;
          if (!p.buf[1 - i].empty())
            ev |= POLLOUT;
          fds.push_back({p.fd[i], ev, 0});
        }
      if (::poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR)
        break;
      if (fds[0].revents != 0) {
        char drain[64];
        while (::read(wake_[0], drain, sizeof(drain)) > 0) {
        }
      }
      if (cut_requested_ || stop_)
        continue;
      // Pairs polled this round (accepting below adds more).
      const size_t polled = (fds.size() - 2) / 2;
      if (fds[1].revents & POLLIN) {
        for (;;) {
          int c = ::accept4(listener_, nullptr, nullptr,
                            SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0)
            break;
          if (held_) {
            ::close(c);
            continue;
          }
          int t = dial_target();
          if (t < 0) {
            ::close(c);
            continue;
          }
          if (!uds_) {
            // No Nagle delay: the proxy must not slow small frames down.
            int one = 1;
            ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            ::setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          }
          pairs_.push_back(pair{{c, t}, {}});
          ++accepted_;
        }
      }
      std::vector<size_t> dead;
      for (size_t k = 0; k < polled; ++k) {
        auto& p = pairs_[k];
        bool alive = true;
        for (int i = 0; i < 2 && alive; ++i) {
          auto& f = fds[2 + 2 * k + i];
          if (f.revents & (POLLIN | POLLHUP | POLLERR))
            alive = pump(p, i);
          if (alive && (f.revents & POLLOUT))
            alive = flush(p, 1 - i);
        }
        if (!alive)
          dead.push_back(k);
      }
      for (auto k = dead.rbegin(); k != dead.rend(); ++k) {
        ::close(pairs_[*k].fd[0]);
        ::close(pairs_[*k].fd[1]);
        pairs_.erase(pairs_.begin() + static_cast<std::ptrdiff_t>(*k));
      }
    }
  }

  const bool uds_;
  const std::string target_;
  const std::string path_;
  uint16_t port_ = 0;
  int listener_ = -1;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> cut_requested_{false};
  std::atomic<bool> held_{false};
  std::atomic<bool> half_{false};
  std::vector<int> silent_; // target ends kept open by a half cut
  std::atomic<size_t> accepted_{0};
  std::mutex mtx_;
  std::condition_variable cut_done_cv_;
  size_t last_cut_ = 0;
  std::vector<pair> pairs_; // proxy thread only (and the destructor)
};

} // namespace relay::test
