#include "fd/fd_transport.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstdlib>

#include "common/accept_util.hpp"
#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"
#include "uds/uds_peer.hpp"

namespace relay {

namespace {

caf::expected<int> parse(const endpoint& ep) {
  auto bad = [&] {
    return make_error(errc::invalid_uri,
                      "'" + ep.text
                        + "': the fd transport takes fd://N with N an open "
                          "descriptor number (e.g. fd://3)");
  };
  if (ep.rest.size() < 3 || ep.rest.compare(0, 2, "//") != 0)
    return bad();
  auto digits = ep.rest.substr(2);
  if (digits.empty() || digits.size() > 9
      || digits.find_first_not_of("0123456789") != std::string::npos)
    return bad();
  return std::atoi(digits.c_str());
}

} // namespace

fd_transport::fd_transport(std::shared_ptr<reactor> io,
                           transport_options options)
  : io_(std::move(io)), options_(std::move(options)) {
  // nop
}

std::string fd_transport::scheme() const {
  return scheme_name;
}

uint64_t fd_transport::rejected_peers() const noexcept {
  return *rejected_;
}

caf::expected<connection_ptr> fd_transport::adopt(const endpoint& ep,
                                                  errc code) {
  auto fd = parse(ep);
  if (!fd)
    return fd.error();
  auto& uri = ep.text;
  if (::fcntl(*fd, F_GETFD) < 0)
    return make_errno_error(code, uri, errno, "not an open descriptor");
  int type = 0;
  int domain = 0;
  socklen_t len = sizeof(int);
  if (::getsockopt(*fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
    return make_errno_error(code, uri, errno, "not a socket");
  len = sizeof(int);
  if (::getsockopt(*fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0
      || domain != AF_UNIX || type != SOCK_STREAM)
    return make_error(code, uri + ": not a Unix stream socket");
  auto peer = uds_peer::of(*fd, code, uri);
  if (!peer)
    return peer.error();
  if (auto why = peer->check_uid(options_); !why.empty()) {
    ++*rejected_;
    return make_error(errc::peer_rejected, peer->describe(uri) + ": " + why);
  }
  if (auto err = set_nonblocking(*fd, true, code, uri))
    return err;
  if (auto err = set_cloexec(*fd, code, uri))
    return err;
  return stream_connection::make(
    io_, std::make_unique<socket_channel>(unique_fd{*fd}, true),
    peer->describe(uri), options_);
}

caf::expected<std::unique_ptr<acceptor>>
fd_transport::listen(const endpoint& ep, accept_callback on_accept) {
  if (!on_accept)
    return make_error(errc::invalid_argument, "listen without a callback");
  auto conn = adopt(ep, errc::listen_failed);
  if (!conn)
    return conn.error();
  return accept_adopted(io_, ep.text, std::move(*conn), std::move(on_accept));
}

caf::expected<connection_ptr> fd_transport::connect(const endpoint& ep) {
  return adopt(ep, errc::connect_failed);
}

} // namespace relay
