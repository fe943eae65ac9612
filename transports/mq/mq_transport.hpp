#pragma once

#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/transport_log.hpp"
#include "mq/mq_channel.hpp"
#include "mq/mq_queue.hpp"
#include "relay/transport.hpp"

namespace relay {

/// A connected client channel and the peer's name for messages.
struct mq_client {
  std::unique_ptr<mq_channel> channel;
  std::string name;
};

/// The client's side of the rendezvous (mq_queue.hpp), blocking at most
/// options.handshake_timeout: checks the accept queue (same user, a live
/// listener), creates the pair with `geometry`, asks and waits for the
/// answer. The pair's names are gone when this returns, whatever happened.
/// Errors: those of mq_transport::connect. Thread-safe.
caf::expected<mq_client> mq_connect_channel(const mq::address& addr,
                                            mq::geometry geometry,
                                            const transport_options& options,
                                            std::weak_ptr<reactor> io);

/// POSIX message queues between processes of one user on one machine:
/// `mq:///name`.
///
/// The listener owns the accept queue /name; each connection gets a pair of
/// queues that the client creates and the listener checks, opens and
/// unlinks (the rendezvous is in mq_queue.hpp, the design in docs/mq.md).
/// Frames travel as messages of at most relay.mq.message-size bytes (see
/// mq_channel.hpp), so the default unprivileged limits (10 messages of
/// 8 KiB per queue) suffice for frames of any size.
///
/// Security: every queue is created 0600, and a queue owned by another
/// user or open to others is refused on both sides, so only processes of
/// the same effective uid connect (relay.allow-other-uids does not apply:
/// the queues' modes would have to open them to everyone). A live
/// listener is never taken over: it holds an exclusive flock(2) on its
/// queue. A name left by a listener that died is taken over by the next.
///
/// Clean-up: the pair's names are unlinked as soon as the listener has
/// opened them, so a crash of either side afterwards leaves nothing (the
/// kernel frees a queue with its last descriptor). The listener unlinks its
/// accept queue on shutdown. Memory: each queue of a connection counts
/// message-size * max-messages bytes (plus bookkeeping) against the user's
/// RLIMIT_MSGQUEUE (800 KiB by default: four connections at the default
/// sizes); mq_open's refusal names the limit.
///
/// Options (declare_options); the connecting side's values size a
/// connection's queues (a listener still refuses to start with invalid
/// ones):
///   relay.mq.message-size  bytes per message, 128 to 1 MiB (8192); larger
///                          frames travel in several
///   relay.mq.max-messages  messages each queue holds (10)
///
/// Needs Linux 5.3 or later (pidfd_open) and both processes in one pid
/// namespace.
///
/// Thread rules: all members are thread-safe. I/O runs on the shared
/// reactor: a listener's accept queue and each connection's epoll set are
/// descriptors there.
class mq_transport : public transport {
public:
  static constexpr const char* scheme_name = "mq";

  /// This transport's own settings, read from transport_options::settings.
  struct settings {
    mq::geometry geometry;

    /// Errors (errc::invalid_argument): sizes outside the bounds above.
    static caf::expected<settings> read(const transport_options& options);
  };

  mq_transport(std::shared_ptr<reactor> io, transport_options options);

  /// Declares relay.mq.message-size and relay.mq.max-messages.
  static void declare_options(const option_declarer& declare);

  /// Returns "mq".
  std::string scheme() const override;

  /// Creates (or takes over from a dead listener) the accept queue of `ep`
  /// and serves requests on it. Errors (errc::listen_failed): a live
  /// listener holds the name, the name is owned by another user, mq_open
  /// refused; errc::invalid_uri for a bad name.
  caf::expected<std::unique_ptr<acceptor>>
  listen(const endpoint& ep, accept_callback on_accept) override;

  /// Creates a queue pair, asks the listener to take it and waits at most
  /// options.handshake_timeout for the answer. Errors: errc::connect_failed
  /// (no listener, a stale queue, limits), errc::peer_rejected (the queue
  /// belongs to another user, or the listener refused), errc::
  /// handshake_timeout, errc::handshake_failed, errc::version_mismatch.
  caf::expected<connection_ptr> connect(const endpoint& ep) override;

  /// Requests refused by this transport's listeners.
  uint64_t rejected_peers() const noexcept override;

private:
  std::shared_ptr<reactor> io_;
  transport_options options_;
  caf::expected<settings> settings_;
  rejection_counter rejected_ = std::make_shared<std::atomic<uint64_t>>(0);
};

} // namespace relay
