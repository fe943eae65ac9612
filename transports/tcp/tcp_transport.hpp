#pragma once

#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/transport_log.hpp"
#include "relay/transport.hpp"
#include "tcp/tcp_layer.hpp"

namespace relay {

/// TCP: `tcp://host:port`, `tcp://[v6]:port`, `tcp://:port` (loopback).
/// Every connection is mutually authenticated with options.secret before the
/// first frame (tcp_auth.hpp); without a secret, listen and connect fail
/// unless relay.tcp.insecure is set. TCP_NODELAY and keep-alive are on.
///
/// Options (declare_options): relay.tcp.insecure (bool, false): run without
/// authentication; for trusted networks only.
///
/// Thread rules: all members are thread-safe; listen and connect may run
/// concurrently. I/O runs on the shared reactor.
class tcp_transport : public transport {
public:
  static constexpr const char* scheme_name = "tcp";

  /// `io` must not be null; it is shared with every listener and connection.
  tcp_transport(std::shared_ptr<reactor> io, transport_options options);

  /// Declares relay.tcp.insecure.
  static void declare_options(const option_declarer& declare);

  /// Returns "tcp".
  std::string scheme() const override;

  /// Listens on `ep` (see tcp_listener::make); the acceptor's uri() has the
  /// real port. Errors: errc::invalid_uri, errc::insecure_configuration,
  /// errc::listen_failed, errc::invalid_argument.
  caf::expected<std::unique_ptr<acceptor>>
  listen(const endpoint& ep, accept_callback on_accept) override;

  /// Connects and authenticates (see tcp_connect). Errors: errc::invalid_uri
  /// and those of tcp_connect.
  caf::expected<connection_ptr> connect(const endpoint& ep) override;

  /// Peers that failed or stalled authentication at this transport's
  /// listeners.
  uint64_t rejected_peers() const noexcept override;

  bool can_redial() const noexcept override {
    return true;
  }

private:
  std::shared_ptr<reactor> io_;
  transport_options options_;
  std::shared_ptr<tcp_layer> layer_;
  rejection_counter rejected_ = std::make_shared<std::atomic<uint64_t>>(0);
};

} // namespace relay
