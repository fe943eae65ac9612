#pragma once

#include <memory>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "relay/transport.hpp"
#include "tcp/tcp_address.hpp"

namespace relay {

/// Connects to `addr` (each resolved address in turn), authenticates (see
/// tcp_auth.hpp) and returns a stream_connection on `io`, not yet started.
/// Blocks the caller at most options.connect_timeout for the connect and
/// options.handshake_timeout for the authentication.
///
/// Thread-safe. Errors, all naming the URI: errc::insecure_configuration (no
/// secret and insecure mode not allowed), errc::connect_failed ("host not
/// found", "connection refused", other errno text), errc::connect_timeout,
/// errc::authentication_failed, errc::version_mismatch,
/// errc::handshake_timeout, errc::connection_closed.
caf::expected<connection_ptr> tcp_connect(const std::shared_ptr<reactor>& io,
                                          const tcp_address& addr,
                                          const transport_options& options);

} // namespace relay
