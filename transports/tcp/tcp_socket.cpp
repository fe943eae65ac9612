#include "tcp/tcp_socket.hpp"

#include <cerrno>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "relay/error.hpp"

namespace relay {

caf::error set_tcp_options(int fd, errc code, const std::string& who) {
  auto set = [&](int level, int name, int value, const char* what) {
    if (::setsockopt(fd, level, name, &value, sizeof(value)) < 0)
      return make_errno_error(code, who, errno, what);
    return caf::error{};
  };
  if (auto err = set(IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)"))
    return err;
  if (auto err = set(SOL_SOCKET, SO_KEEPALIVE, 1, "setsockopt(SO_KEEPALIVE)"))
    return err;
  if (auto err = set(IPPROTO_TCP, TCP_KEEPIDLE, keepalive_idle_s,
                     "setsockopt(TCP_KEEPIDLE)"))
    return err;
  if (auto err = set(IPPROTO_TCP, TCP_KEEPINTVL, keepalive_interval_s,
                     "setsockopt(TCP_KEEPINTVL)"))
    return err;
  return set(IPPROTO_TCP, TCP_KEEPCNT, keepalive_count,
             "setsockopt(TCP_KEEPCNT)");
}

bool tcp_insecure(const transport_options& options) {
  return options.settings != nullptr
         && caf::get_or(*options.settings, tcp_insecure_key, false);
}

caf::expected<std::string> tcp_secret(const transport_options& options,
                                      const std::string& uri) {
  if (!options.secret.empty())
    return options.secret;
  if (tcp_insecure(options))
    return std::string{};
  return make_error(errc::insecure_configuration,
                    uri + ": no secret configured for tcp: set "
                          "relay.cookie-file (a file only its owner can read) "
                          "or the RELAY_COOKIE environment variable, or set "
                          "relay.tcp.insecure to run without authentication");
}

handshake_io::~handshake_io() = default;

ssize_t socket_handshake_io::send(const uint8_t* data, size_t size) {
  return ::send(fd_, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
}

ssize_t socket_handshake_io::recv(uint8_t* data, size_t size) {
  return ::recv(fd_, data, size, MSG_DONTWAIT);
}

int send_output(handshake_io& io, tcp_auth::handshake& hs) {
  auto& out = hs.output();
  while (!out.empty()) {
    auto n = io.send(out.data(), out.size());
    if (n > 0) {
      out.erase(out.begin(), out.begin() + n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 0;
    } else {
      return n < 0 ? errno : EPIPE;
    }
  }
  return 0;
}

caf::error run_handshake(int fd, tcp_auth::handshake& hs,
                         std::chrono::steady_clock::time_point deadline,
                         const std::string& who) {
  socket_handshake_io io{fd};
  return run_handshake(io, hs, deadline, who);
}

caf::error run_handshake(handshake_io& io, tcp_auth::handshake& hs,
                         std::chrono::steady_clock::time_point deadline,
                         const std::string& who) {
  using namespace std::chrono;
  using status = tcp_auth::handshake::status;
  auto wait = [&](short events) -> caf::error {
    for (;;) {
      auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
      if (left.count() <= 0)
        return make_error(errc::handshake_timeout,
                          who + ": the peer did not complete authentication "
                                "in time");
      pollfd p{io.fd(), events, 0};
      auto rc = ::poll(&p, 1, poll_timeout(left));
      if (rc > 0)
        return caf::none;
      if (rc < 0 && errno != EINTR)
        return make_errno_error(errc::connection_closed, who, errno, "poll");
    }
  };
  for (;;) {
    while (!hs.output().empty()) {
      if (auto err = send_output(io, hs))
        return hs.state() == status::failed
                 ? hs.error()
                 : make_errno_error(errc::connection_closed, who, err,
                                    "sending the authentication handshake");
      if (!hs.output().empty())
        if (auto err = wait(POLLOUT))
          return err;
    }
    if (hs.state() == status::succeeded)
      return caf::none;
    if (hs.state() == status::failed)
      return hs.error();
    // Read first, wait only when nothing is there: a TLS session may hold
    // bytes it already took from the socket, which poll() cannot see.
    uint8_t buf[64];
    auto n = io.recv(buf, std::min(hs.wanted(), sizeof(buf)));
    if (n > 0) {
      hs.feed(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return make_error(errc::connection_closed,
                        who + ": the peer closed the connection during "
                              "authentication");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto err = wait(POLLIN))
        return err;
    } else if (errno != EINTR) {
      return make_errno_error(errc::connection_closed, who, errno,
                              "reading the authentication handshake");
    }
  }
}

setup_status auth_step(handshake_io& io, tcp_auth::handshake& hs,
                       const std::string& peer) {
  using status = tcp_auth::handshake::status;
  for (;;) {
    if (auto err = send_output(io, hs))
      return setup_status::fail(
        make_errno_error(errc::connection_closed, peer, err, "send"));
    if (hs.state() == status::failed)
      return setup_status::fail(hs.error());
    if (hs.state() == status::succeeded)
      return setup_status::done();
    if (!hs.output().empty())
      return setup_status::wait(EPOLLOUT);
    uint8_t buf[64];
    auto n = io.recv(buf, std::min(hs.wanted(), sizeof(buf)));
    if (n > 0) {
      hs.feed(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return setup_status::fail(make_error(
        errc::connection_closed,
        peer + ": closed the connection during authentication"));
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return setup_status::wait(EPOLLIN);
    } else if (errno != EINTR) {
      return setup_status::fail(
        make_errno_error(errc::connection_closed, peer, errno, "recv"));
    }
  }
}

} // namespace relay
