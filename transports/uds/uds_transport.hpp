#pragma once

#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/transport_log.hpp"
#include "relay/transport.hpp"

namespace relay {

/// Unix domain stream sockets: `uds:///abs/path` and, in Linux's abstract
/// namespace, `uds:@name`. Socket files are created 0600; both sides accept
/// only peers of the same effective uid unless options.allow_other_uids.
///
/// Thread rules: all members are thread-safe; listen and connect may run
/// concurrently. I/O runs on the shared reactor.
class uds_transport : public transport {
public:
  /// The scheme this transport serves.
  static constexpr const char* scheme_name = "uds";

  /// `io` must not be null; it is shared with every listener and connection
  /// this transport makes, which keep it alive.
  uds_transport(std::shared_ptr<reactor> io, transport_options options);

  /// Returns "uds".
  std::string scheme() const override;

  /// Listens on `ep` (see uds_listener::make). The returned acceptor stops
  /// listening and removes the socket file when destroyed. Errors:
  /// errc::invalid_uri (see uds_address::parse), errc::listen_failed,
  /// errc::invalid_argument for an empty callback.
  caf::expected<std::unique_ptr<acceptor>>
  listen(const endpoint& ep, accept_callback on_accept) override;

  /// Connects to `ep` (see uds_connect), blocking at most
  /// options().connect_timeout. Errors: errc::invalid_uri,
  /// errc::connect_failed, errc::connect_timeout, errc::peer_rejected.
  caf::expected<connection_ptr> connect(const endpoint& ep) override;

  /// The options given at construction.
  const transport_options& options() const noexcept {
    return options_;
  }

  /// Peers of another uid refused by this transport's listeners.
  uint64_t rejected_peers() const noexcept override;

  bool can_redial() const noexcept override {
    return true;
  }

private:
  std::shared_ptr<reactor> io_;
  transport_options options_;
  rejection_counter rejected_ = std::make_shared<std::atomic<uint64_t>>(0);
};

} // namespace relay
