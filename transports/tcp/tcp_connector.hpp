#pragma once

#include <memory>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "relay/transport.hpp"
#include "tcp/tcp_address.hpp"
#include "tcp/tcp_layer.hpp"

namespace relay {

/// Connects to `addr` (each resolved address in turn), runs `layer`'s
/// client set-up (authentication, TLS) and returns a stream_connection on
/// `io`, not yet started. Blocks the caller at most options.connect_timeout
/// for the connect and options.handshake_timeout for the set-up.
///
/// Thread-safe. Errors, all naming the URI: those of layer.prepare (e.g.
/// errc::insecure_configuration: no secret and insecure mode not allowed),
/// errc::connect_failed ("host not found", "connection refused", other
/// errno text), errc::connect_timeout, and those of layer.connect
/// (errc::authentication_failed, errc::version_mismatch,
/// errc::handshake_timeout, errc::connection_closed, ...).
caf::expected<connection_ptr> tcp_connect(const std::shared_ptr<reactor>& io,
                                          const tcp_address& addr,
                                          const transport_options& options,
                                          tcp_layer& layer);

} // namespace relay
