#pragma once

// The fd transport: a connection over a Unix stream socket this process
// already holds, typically one end of a socketpair inherited from a parent
// process ("fd://3"). No address, no listening socket, no file: the channel
// exists before either node starts. The parent adopts its end with
// listen("fd://N") (it accepts exactly that one connection) and the child
// its end with connect("fd://N"), so the handshake has its usual roles.

#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/transport_log.hpp"
#include "relay/error.hpp"
#include "relay/transport.hpp"

namespace relay {

class fd_transport : public transport {
public:
  /// The scheme this transport serves.
  static constexpr const char* scheme_name = "fd";

  /// `io` must not be null.
  fd_transport(std::shared_ptr<reactor> io, transport_options options);

  /// Returns "fd".
  std::string scheme() const override;

  /// Adopts descriptor N of "fd://N" as one accepted connection, passed to
  /// `on_accept` on the reactor thread. The descriptor must be a connected
  /// AF_UNIX stream socket whose peer passes the uid rule (same uid unless
  /// relay.allow-other-uids); it is owned by the connection from then on
  /// (closed with it), so the caller must not use or adopt it again. Errors:
  /// invalid_uri (not "fd://N" with N a descriptor number), listen_failed
  /// (not an open descriptor, not a Unix stream socket), peer_rejected (uid
  /// rule).
  caf::expected<std::unique_ptr<acceptor>>
  listen(const endpoint& ep, accept_callback on_accept) override;

  /// Adopts descriptor N of "fd://N" as a connection that starts the
  /// handshake. Same rules and errors as listen, with connect_failed in
  /// place of listen_failed.
  caf::expected<connection_ptr> connect(const endpoint& ep) override;

  /// Peers refused by the uid rule.
  uint64_t rejected_peers() const noexcept override;

private:
  caf::expected<connection_ptr> adopt(const endpoint& ep, errc code);

  std::shared_ptr<reactor> io_;
  transport_options options_;
  rejection_counter rejected_ = std::make_shared<std::atomic<uint64_t>>(0);
};

} // namespace relay
