#pragma once

#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/transport_log.hpp"
#include "relay/transport.hpp"
#include "tcp/tcp_address.hpp"
#include "tcp/tcp_layer.hpp"

namespace relay {

/// A listening TCP socket: the relay::acceptor of tcp_transport and
/// tls_transport.
///
/// Accepts on the reactor thread and runs the layer's set-up (tcp_layer.hpp:
/// authentication, TLS) for each peer there, without blocking, bounded by
/// options.handshake_timeout and
/// setup_sessions::max_pending connections at once. A peer
/// that fails or stalls is closed, logged with its address and the reason,
/// and counted; only authenticated connections, not yet started, reach the
/// accept callback.
class tcp_listener : public acceptor {
public:
  /// Backlog passed to listen(2).
  static constexpr int backlog = 128;

  /// Binds `addr` (no host: 127.0.0.1; port 0: a free port) and listens;
  /// `layer` secures each accepted socket. Thread-safe. Errors: those of
  /// layer->prepare (e.g. errc::insecure_configuration: no secret and
  /// insecure mode not allowed), errc::listen_failed naming the URI and the
  /// cause ("host not found", "address in use", errno text),
  /// errc::invalid_argument for an empty callback.
  static caf::expected<std::unique_ptr<tcp_listener>>
  make(std::shared_ptr<reactor> io, const tcp_address& addr,
       const transport_options& options, std::shared_ptr<tcp_layer> layer,
       accept_callback on_accept, rejection_counter rejected);

  /// Stops listening and drops connections still authenticating: after the
  /// destructor returns, the accept callback is not running and never runs
  /// again. Must not be called while holding a lock the callback takes.
  ~tcp_listener() override;

  /// "<scheme>://<bound address>:<bound port>", with the real port.
  /// Thread-safe.
  std::string uri() const override;

  struct state;

  /// Use make().
  tcp_listener(std::shared_ptr<reactor> io, std::shared_ptr<state> st);

private:
  std::shared_ptr<reactor> io_;
  std::shared_ptr<state> state_;
};

} // namespace relay
