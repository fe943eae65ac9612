#pragma once

// The pipe transport: a connection over a pair of anonymous pipes this
// process already holds, one to read and one to write, typically inherited
// from a parent ("pipe://3,4": read descriptor 3, write descriptor 4). The
// classic IPC pipe, for children that may open no sockets. As with fd://,
// the parent adopts its ends with listen() (one accepted connection) and
// the child its ends with connect().
//
// Pipes carry no peer credentials: whoever holds the descriptors is the
// peer, which for inherited pipes is the process that created them. Writing
// to a pipe whose reader is gone raises SIGPIPE; this transport ignores
// SIGPIPE in the process (as every socket transport avoids it per call).

#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "relay/error.hpp"
#include "relay/transport.hpp"

namespace relay {

class pipe_transport : public transport {
public:
  /// The scheme this transport serves.
  static constexpr const char* scheme_name = "pipe";

  /// `io` must not be null. Ignores SIGPIPE in this process.
  pipe_transport(std::shared_ptr<reactor> io, transport_options options);

  /// Returns "pipe".
  std::string scheme() const override;

  /// Adopts "pipe://R,W" (R the read end of a pipe, W the write end of
  /// another) as one accepted connection, passed to `on_accept` on the
  /// reactor thread. The descriptors belong to the connection from then on.
  /// Errors: invalid_uri (not "pipe://R,W"), listen_failed (not open, not a
  /// pipe, or the wrong end).
  caf::expected<std::unique_ptr<acceptor>>
  listen(const endpoint& ep, accept_callback on_accept) override;

  /// Adopts "pipe://R,W" as a connection that starts the handshake. Same
  /// rules; connect_failed in place of listen_failed.
  caf::expected<connection_ptr> connect(const endpoint& ep) override;

private:
  caf::expected<connection_ptr> adopt(const endpoint& ep, errc code);

  std::shared_ptr<reactor> io_;
  transport_options options_;
};

} // namespace relay
