#pragma once

#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/transport_log.hpp"
#include "relay/transport.hpp"
#include "tls/tls_layer.hpp"

namespace relay {

/// TLS over TCP: `tls://host:port`, `tls://[v6]:port`, `tls://:port`
/// (loopback), the same address rules as tcp://. Every connection is TLS
/// 1.3 with mutual certificate authentication against relay.tls.ca-file;
/// with a node secret, both ends also prove it inside the session, bound
/// to it (tls_layer.hpp, docs/security.md). Frames are encrypted and
/// integrity-protected. TCP_NODELAY and keep-alive are on.
///
/// Options (declare_options), all strings: relay.tls.ca-file,
/// relay.tls.cert-file, relay.tls.key-file (required; the key file must
/// not be readable by group or others), relay.tls.peer-name (optional pin).
/// relay.tcp.source-address applies too. The files are loaded at the first
/// listen or connect; a later change needs a new node.
///
/// Thread rules: all members are thread-safe. I/O runs on the shared
/// reactor; the TLS handshake of accepted peers runs there without blocking.
class tls_transport : public transport {
public:
  static constexpr const char* scheme_name = "tls";

  /// `io` must not be null.
  tls_transport(std::shared_ptr<reactor> io, transport_options options);

  /// Declares relay.tls.*.
  static void declare_options(const option_declarer& declare);

  /// Returns "tls".
  std::string scheme() const override;

  /// Errors: errc::invalid_uri, errc::invalid_argument (certificates not
  /// configured or unreadable), errc::listen_failed.
  caf::expected<std::unique_ptr<acceptor>>
  listen(const endpoint& ep, accept_callback on_accept) override;

  /// Errors: errc::invalid_uri, errc::invalid_argument, errc::connect_failed,
  /// errc::connect_timeout, errc::handshake_timeout,
  /// errc::authentication_failed (a certificate or the secret refused),
  /// errc::handshake_failed, errc::connection_closed.
  caf::expected<connection_ptr> connect(const endpoint& ep) override;

  /// Peers that failed or stalled the TLS handshake or the proof at this
  /// transport's listeners.
  uint64_t rejected_peers() const noexcept override;

  bool can_redial() const noexcept override {
    return true;
  }

private:
  std::shared_ptr<reactor> io_;
  transport_options options_;
  std::shared_ptr<tls_layer> layer_;
  rejection_counter rejected_ = std::make_shared<std::atomic<uint64_t>>(0);
};

} // namespace relay
