#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/transport_log.hpp"
#include "relay/transport.hpp"

namespace relay {

/// Shared memory between processes of one machine: `shm:///path`.
///
/// The path is a Unix socket used as a rendezvous, with the rules of uds
/// (0600, same uid, a live listener is never taken over, removed on
/// shutdown). Each connection then gets its own sealed memfd with one ring
/// per direction (relay.shm.ring-size bytes each), handed over with
/// SCM_RIGHTS; frames travel through the rings (see shm_channel.hpp), and
/// the socket carries only doorbell bytes and, by closing, the news that
/// the peer is gone. Nothing is left in /dev/shm or the file system.
///
/// Options (declare_options):
///   relay.shm.ring-size  bytes of each ring, a power of two from 4 KiB to
///                        256 MiB (1 MiB); larger frames stream through in
///                        pieces
///   relay.shm.spin       how long a reader spins on an empty ring before it
///                        sleeps on its doorbell (20us); longer cuts latency
///                        and costs CPU, 0 never spins
///
/// Thread rules: all members are thread-safe. I/O runs on the shared
/// reactor: each connection's socket is one more descriptor there.
class shm_transport : public transport {
public:
  static constexpr const char* scheme_name = "shm";

  /// This transport's own settings, read from transport_options::settings.
  struct settings {
    size_t ring_size = size_t{1} << 20;
    std::chrono::nanoseconds spin{std::chrono::microseconds{20}};

    static settings read(const transport_options& options);
  };

  shm_transport(std::shared_ptr<reactor> io, transport_options options);

  /// Declares relay.shm.ring-size and relay.shm.spin.
  static void declare_options(const option_declarer& declare);

  /// Returns "shm".
  std::string scheme() const override;

  /// Listens on the rendezvous socket of `ep`. Errors: those of uds listen.
  caf::expected<std::unique_ptr<acceptor>>
  listen(const endpoint& ep, accept_callback on_accept) override;

  /// Connects to the rendezvous socket, hands over a fresh region and
  /// waits (at most options.handshake_timeout) for the listener to take
  /// it. Errors: those of uds connect, errc::handshake_failed,
  /// errc::handshake_timeout, errc::peer_rejected.
  caf::expected<connection_ptr> connect(const endpoint& ep) override;

  /// Peers of another uid, and set-ups that failed or stalled.
  uint64_t rejected_peers() const noexcept override;

private:
  std::shared_ptr<reactor> io_;
  transport_options options_;
  settings settings_;
  rejection_counter rejected_ = std::make_shared<std::atomic<uint64_t>>(0);
};

} // namespace relay
