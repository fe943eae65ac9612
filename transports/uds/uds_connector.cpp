#include "uds/uds_connector.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>

#include <sys/socket.h>
#include <sys/time.h>

#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"
#include "relay/error.hpp"
#include "uds/uds_peer.hpp"

namespace relay {

namespace {

caf::error set_send_timeout(int fd, std::chrono::microseconds timeout,
                            const std::string& uri) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000000);
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
    return make_errno_error(errc::connect_failed, uri, errno,
                            "setsockopt(SO_SNDTIMEO)");
  return caf::none;
}

caf::error connect_error(const std::string& uri, int err) {
  switch (err) {
    case ENOENT:
      return make_errno_error(errc::connect_failed, uri, err,
                              "no such socket");
    case ECONNREFUSED:
      return make_errno_error(errc::connect_failed, uri, err,
                              "nobody is listening");
    case EACCES:
    case EPERM:
      return make_errno_error(errc::connect_failed, uri, err,
                              "permission denied");
    default:
      return make_errno_error(errc::connect_failed, uri, err, "connect");
  }
}

} // namespace

caf::expected<connection_ptr> uds_connect(const std::shared_ptr<reactor>& io,
                                          const uds_address& addr,
                                          const transport_options& options) {
  auto sock = uds_connect_socket(addr, options);
  if (!sock)
    return sock.error();
  return stream_connection::make(
    io, std::make_unique<socket_channel>(std::move(sock->fd), true),
    std::move(sock->peer), options);
}

caf::expected<uds_socket> uds_connect_socket(const uds_address& addr,
                                             const transport_options& options) {
  using namespace std::chrono;
  auto uri = addr.uri();
  // Blocking on purpose: a Unix stream connect never reports EINPROGRESS.
  // It completes at once, or waits while the listener's backlog is full; a
  // non-blocking socket would fail with EAGAIN instead. SO_SNDTIMEO bounds
  // that wait in the kernel; the socket turns non-blocking afterwards.
  unique_fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (!fd)
    return make_errno_error(errc::connect_failed, uri, errno, "socket");
  sockaddr_un sa;
  auto len = addr.to_sockaddr(sa);
  auto deadline = steady_clock::now() + options.connect_timeout;
  for (;;) {
    auto left = duration_cast<microseconds>(deadline - steady_clock::now());
    if (left.count() <= 0)
      return make_error(errc::connect_timeout,
                        uri + ": not accepted within "
                          + std::to_string(options.connect_timeout.count())
                          + " ms (listener backlog full)");
    // A zero SO_SNDTIMEO means "forever"; never pass it.
    if (auto err = set_send_timeout(fd.get(), std::max(left, microseconds{1}),
                                    uri))
      return err;
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) == 0)
      break;
    if (errno == EINTR)
      continue; // the socket is still unconnected; retry with the time left
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS)
      continue; // backlog still full; the loop head reports the timeout
    return connect_error(uri, errno);
  }
  if (auto err = set_send_timeout(fd.get(), microseconds{0}, uri))
    return err;
  if (auto err = set_nonblocking(fd.get(), true, errc::connect_failed, uri))
    return err;
  auto peer = uds_peer::of(fd.get(), errc::connect_failed, uri);
  if (!peer)
    return peer.error();
  if (auto why = peer->check_uid(options); !why.empty())
    return make_error(errc::peer_rejected,
                      uri + ": listener pid " + std::to_string(peer->pid)
                        + " runs as uid " + std::to_string(peer->uid) + ": "
                        + why + " (allow_other_uids is off)");
  return uds_socket{std::move(fd), peer->describe(uri)};
}

} // namespace relay
