#include "tcp/tcp_connector.hpp"

#include <arpa/inet.h>

#include <caf/settings.hpp>

#include <cerrno>
#include <chrono>

#include <poll.h>
#include <sys/socket.h>

#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"
#include "relay/error.hpp"
#include "tcp/tcp_socket.hpp"

namespace relay {

namespace {

using clock_type = std::chrono::steady_clock;

caf::error connect_error(const std::string& who, int err) {
  switch (err) {
    case ECONNREFUSED:
      return make_errno_error(errc::connect_failed, who, err,
                              "connection refused");
    case ENETUNREACH:
    case EHOSTUNREACH:
      return make_errno_error(errc::connect_failed, who, err,
                              "host unreachable");
    default:
      return make_errno_error(errc::connect_failed, who, err, "connect");
  }
}

// Connects non-blocking socket `fd` to `sa` by `deadline`.
caf::error connect_one(int fd, const tcp_sockaddr& sa,
                       clock_type::time_point deadline, const std::string& who,
                       std::chrono::milliseconds timeout) {
  using namespace std::chrono;
  if (::connect(fd, sa.get(), sa.length) == 0)
    return caf::none;
  if (errno != EINPROGRESS && errno != EINTR)
    return connect_error(who, errno);
  for (;;) {
    auto left = duration_cast<milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0)
      return make_error(errc::connect_timeout,
                        who + ": no answer within "
                          + std::to_string(timeout.count()) + " ms");
    pollfd p{fd, POLLOUT, 0};
    auto rc = ::poll(&p, 1, poll_timeout(left));
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc < 0)
      return make_errno_error(errc::connect_failed, who, errno, "poll");
    if (rc == 0)
      continue; // the loop head reports the timeout
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
      return make_errno_error(errc::connect_failed, who, errno,
                              "getsockopt(SO_ERROR)");
    return err == 0 ? caf::none : connect_error(who, err);
  }
}

} // namespace

// Binds `fd` to relay.tcp.source-address (port 0) if set and of the
// target's family: outgoing connections then come from that address.
static caf::error bind_source(int fd, int family, const transport_options& options,
                       const std::string& who) {
  if (options.settings == nullptr)
    return caf::none;
  auto source = caf::get_or(*options.settings, "relay.tcp.source-address",
                            std::string{});
  if (source.empty())
    return caf::none;
  tcp_sockaddr sa;
  if (family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(sa.storage);
    in.sin_family = AF_INET;
    if (inet_pton(AF_INET, source.c_str(), &in.sin_addr) != 1)
      return caf::none; // an IPv6 source: only for IPv6 targets
    sa.length = sizeof(sockaddr_in);
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(sa.storage);
    in6.sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, source.c_str(), &in6.sin6_addr) != 1)
      return caf::none;
    sa.length = sizeof(sockaddr_in6);
  }
  if (::bind(fd, sa.get(), sa.length) < 0)
    return make_errno_error(errc::connect_failed, who, errno,
                            "bind to relay.tcp.source-address " + source);
  return caf::none;
}

caf::expected<connection_ptr> tcp_connect(const std::shared_ptr<reactor>& io,
                                          const tcp_address& addr,
                                          const transport_options& options,
                                          tcp_layer& layer) {
  auto uri = addr.uri();
  if (auto err = layer.prepare(uri))
    return err;
  auto targets = resolve(addr, false, errc::connect_failed);
  if (!targets)
    return targets.error();
  auto deadline = clock_type::now() + options.connect_timeout;
  caf::error last;
  for (auto& target : *targets) {
    auto who = uri + " (" + target.to_string() + ")";
    unique_fd fd{::socket(target.family, SOCK_STREAM | SOCK_NONBLOCK
                                           | SOCK_CLOEXEC, 0)};
    if (!fd) {
      last = make_errno_error(errc::connect_failed, who, errno, "socket");
      continue;
    }
    if (auto err = bind_source(fd.get(), target.family, options, who)) {
      last = std::move(err);
      continue;
    }
    if (auto err = connect_one(fd.get(), target, deadline, who,
                               options.connect_timeout)) {
      last = std::move(err);
      if (is(last, errc::connect_timeout))
        break; // no time left for the other addresses
      continue;
    }
    if (auto err = set_tcp_options(fd.get(), errc::connect_failed, who))
      return err;
    auto chan = layer.connect(std::move(fd),
                              clock_type::now() + options.handshake_timeout,
                              who);
    if (!chan)
      return chan.error();
    return stream_connection::make(io, std::move(*chan), who, options);
  }
  return last;
}

} // namespace relay
