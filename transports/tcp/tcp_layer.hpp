#pragma once

// What runs on a connected TCP socket before it carries frames. tcp:// runs
// the shared-secret authentication (tcp_auth.hpp) on the socket; tls://
// runs TLS and the same authentication inside it (tls/tls_layer.hpp). The
// socket handling (resolving, binding, listening, connecting, accepting,
// set-up bounds) is shared: tcp_listener and tcp_connect take a layer.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "common/byte_channel.hpp"
#include "common/setup_session.hpp"
#include "common/socket_util.hpp"
#include "relay/transport.hpp"

namespace relay {

/// The security layer of a TCP-based transport.
///
/// Thread rules: every member is thread-safe; a server_setup's functions run
/// on the reactor thread, one at a time.
class tcp_layer {
public:
  virtual ~tcp_layer();

  /// The URI scheme: "tcp", "tls".
  virtual const char* scheme() const noexcept = 0;

  /// Checks the configuration before listening or connecting at `uri`,
  /// e.g. that there is a secret or a certificate. Errors name `uri` and the
  /// option to set (errc::insecure_configuration, errc::invalid_argument).
  virtual caf::error prepare(const std::string& uri) = 0;

  /// Called once a listener is bound at `uri` (the real port); may log a
  /// warning about an insecure choice.
  virtual void listening(const std::string& uri) {
    static_cast<void>(uri);
  }

  /// The server's set-up of one accepted socket.
  struct server_setup {
    /// Runs on readiness until done or failed (see setup_sessions).
    setup_sessions::step_fn step;
    /// Turns the socket of a finished set-up into the connection's channel.
    std::function<std::unique_ptr<byte_channel>(unique_fd)> finish;
  };

  /// Starts the set-up of an accepted socket from `peer` (names it in
  /// errors). Errors: errc::peer_rejected.
  virtual caf::expected<server_setup> accept(const std::string& peer) = 0;

  /// The client's set-up on connected non-blocking socket `fd`, blocking
  /// the caller until `deadline` at most. `who` names the peer in errors.
  /// Errors: errc::authentication_failed, errc::handshake_failed,
  /// errc::handshake_timeout, errc::version_mismatch,
  /// errc::connection_closed.
  virtual caf::expected<std::unique_ptr<byte_channel>>
  connect(unique_fd fd, std::chrono::steady_clock::time_point deadline,
          const std::string& who) = 0;
};

/// tcp://: the shared-secret authentication of tcp_auth.hpp on the bare
/// socket (or nothing, with relay.tcp.insecure).
class secret_layer : public tcp_layer {
public:
  explicit secret_layer(transport_options options)
    : options_(std::move(options)) {
    // nop
  }

  const char* scheme() const noexcept override {
    return "tcp";
  }

  caf::error prepare(const std::string& uri) override;

  void listening(const std::string& uri) override;

  caf::expected<server_setup> accept(const std::string& peer) override;

  caf::expected<std::unique_ptr<byte_channel>>
  connect(unique_fd fd, std::chrono::steady_clock::time_point deadline,
          const std::string& who) override;

private:
  transport_options options_;
};

} // namespace relay
