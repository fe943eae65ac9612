#pragma once

// The transport contract. A transport moves whole frames (see frame.hpp)
// between two endpoints of one URI scheme; it knows nothing about actors,
// messages or the handshake. Transports register by scheme in a
// transport_registry; nothing in the framework names a concrete transport.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/config_option_adder.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/settings.hpp>

#include "relay/frame.hpp"

namespace relay {

/// A parsed endpoint URI: `scheme` is the part before the first ':', `rest`
/// everything after it (e.g. "///run/a.sock", "@name", "//127.0.0.1:4000").
struct endpoint {
  std::string scheme;
  std::string rest;
  /// The URI exactly as given, for messages and logs.
  std::string text;

  /// Splits `uri` at its scheme. Errors: empty or missing scheme, characters
  /// outside [a-z0-9+.-] in the scheme, empty remainder.
  static caf::expected<endpoint> parse(const std::string& uri);
};

/// Options every transport honours, set by the node from its configuration.
/// A transport's own options (relay.<scheme>.*) are declared by the
/// transport (see declare_builtin_transport_options) and read from
/// `settings`.
struct transport_options {
  /// Largest frame body accepted from a peer; larger frames close the
  /// connection. The sender side refuses to send larger frames.
  uint32_t max_frame_body = frame_header::default_max_body;
  /// Accept peers running under another uid (local transports). Off by
  /// default.
  bool allow_other_uids = false;
  /// Bound on connect().
  std::chrono::milliseconds connect_timeout{5000};
  /// Bound on a transport-level handshake (e.g. authentication), both sides.
  std::chrono::milliseconds handshake_timeout{5000};
  /// Shared secret for transports that authenticate peers. Empty: no secret;
  /// such a transport then refuses to listen or connect unless its own
  /// settings allow running without. Never sent over the wire.
  std::string secret;
  /// The node's configuration (caf::actor_system_config::content), where a
  /// transport reads its own options; null means every option has its
  /// default. Not owned; outlives the transport.
  const caf::settings* settings = nullptr;
};

/// Declares options under a category (e.g. "relay.shm"); returns an adder
/// for `add<T>(name, description)`.
using option_declarer
  = std::function<caf::config_option_adder(caf::string_view category)>;

/// An owned, complete frame: header followed by body.
using frame_buffer = std::vector<std::byte>;

class connection;

/// Receives the events of one connection.
///
/// Thread rules: all calls for one connection come from one transport I/O
/// thread, one at a time, never after on_closed. The handler must not block.
class connection_handler {
public:
  virtual ~connection_handler();

  /// A complete frame arrived. `header` passed check_framing(); `body` points
  /// at `header.length` bytes that stay valid only during the call.
  virtual void on_frame(connection& conn, const frame_header& header,
                        const std::byte* body) = 0;

  /// The frames of one read were delivered: called after every run of one
  /// or more on_frame calls, before the I/O thread turns to anything else
  /// (also when the run ended because the connection closed). A handler
  /// may put work off until then, e.g. wake each receiving actor once per
  /// read instead of once per message; a transport must therefore call it.
  /// The default does nothing.
  virtual void on_frames_end(connection& conn);

  /// The connection ended: closed by us, by the peer, or broken. `reason`
  /// says which (never empty). Called exactly once, after start().
  virtual void on_closed(connection& conn, const caf::error& reason) = 0;
};

/// One established, reliable, ordered frame stream to a peer.
///
/// Ownership: shared; the transport keeps its own reference until on_closed
/// has returned, so a connection outlives every callback into its handler.
class connection {
public:
  virtual ~connection();

  /// Starts delivering events to `handler`. Call exactly once; frames that
  /// arrived before are delivered after this call. Thread-safe.
  virtual void start(std::shared_ptr<connection_handler> handler) = 0;

  /// Sends one complete frame (header included). Thread-safe; frames passed
  /// by one thread leave in call order, and frames are never interleaved.
  /// May write on the calling thread when nothing is queued, so a caller
  /// pays no thread hop. Errors: the connection is closed or closing
  /// (sec::connection_closed style error naming the peer). Never blocks on
  /// the peer: excess data is queued.
  virtual caf::error send(frame_buffer frame) = 0;

  /// Sends a copy of `frame`, which the caller keeps (a session's resend
  /// buffer keeps large frames as they are). Like send() otherwise. A
  /// transport that copies a large frame anyway, into a memory file or its
  /// queue, overrides this to spare the caller the copy; the default copies
  /// and calls send().
  virtual caf::error send_copy(const frame_buffer& frame);

  /// Where frames go once a connection has sent its last frame (send_last).
  using successor = std::function<caf::error(frame_buffer)>;

  /// Sends `frame` as the last frame of this connection (after everything
  /// queued) and hands every frame passed to send() afterwards to `next`
  /// instead, on the caller's thread and in call order, e.g. to another
  /// connection to the same peer. Reading goes on until close(). Thread-safe;
  /// a second call is refused with errc::connection_closed. Errors: as send.
  virtual caf::error send_last(frame_buffer frame, successor next) = 0;

  /// Closes the connection. Queued frames are flushed first when `flush` is
  /// true (bounded by the transport). on_closed follows with `reason`.
  /// Thread-safe and idempotent.
  virtual void close(const caf::error& reason, bool flush = false) = 0;

  /// Makes a later close(reason, true) linger: after the last frame the
  /// connection ends its write direction, reports on_closed, and keeps
  /// reading (discarding) until the peer hangs up too, within the flush
  /// bound. A peer that still writes
  /// (acknowledgements) then cannot turn the close into a reset, which
  /// would discard frames still in flight to it. Thread-safe; call before
  /// close. The default does nothing (the close does not linger).
  virtual void linger_on_close();

  /// Stops (`paused` true) or resumes delivering frames, for back-pressure:
  /// while paused the connection reads nothing more from its peer, whose
  /// sends then back up in the transport, and delivers no further frame of
  /// what it already read. Not counted: pause twice, resume once, and it
  /// reads. Nothing is read while paused, not even a hang-up: frames the
  /// peer sent before closing come first, on resume (unless a write to the
  /// gone peer fails first while paused, which closes the connection at
  /// once; a write that fails while reading goes on only stops writing,
  /// and reading continues until the hang-up). Thread-safe; takes effect on the I/O thread (at
  /// once when called from on_frame); calls take effect in call order.
  /// Returns whether the transport honours it. The default does nothing
  /// and returns false: such a transport keeps reading, and its inbound
  /// work is then bounded only by its peer.
  virtual bool pause_reading(bool paused);

  /// The peer reads bulk frames (it said so in its hello): from now on a
  /// transport that passes descriptors may send large frames as sealed
  /// memory files (docs/wire-protocol.md 2.1). Until then, and on other
  /// transports, every frame goes through the stream. Thread-safe. The
  /// default does nothing.
  virtual void allow_bulk();

  /// Human-readable description of the peer for logs and errors, e.g.
  /// "uds:///run/a.sock (pid 42, uid 1000)". Thread-safe, never empty.
  virtual std::string peer_name() const = 0;

  /// What went through a connection so far. Frames count whole frames
  /// accepted by send() or delivered to on_frame; bytes_in counts bytes as
  /// they are read, so it grows while a large frame is still arriving; a
  /// frame that travelled as a memory file (bulk, wire-protocol.md 2.1)
  /// counts its file's size besides the small frame that announced it.
  struct traffic_counters {
    uint64_t frames_in = 0;
    uint64_t frames_out = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    /// Bytes accepted by send() and not yet handed to the channel.
    uint64_t queued_bytes = 0;
  };

  /// A snapshot of the counters. Thread-safe; counting costs the message
  /// path no atomic read-modify-write. The default reports zeros, which the
  /// node's heartbeat reads as silence: a transport must override this, or
  /// its connections close after relay.heartbeat-timeout.
  virtual traffic_counters traffic() const noexcept;

  /// Frames accepted by send() that the connection discarded unsent when it
  /// closed (no flush, or the flush bound elapsed). Meaningful once
  /// on_closed was called. Thread-safe. The default reports 0.
  virtual uint64_t unsent_frames() const noexcept;
};

using connection_ptr = std::shared_ptr<connection>;

/// A listening endpoint. Destroying it stops listening and removes any file
/// it created (e.g. a socket file).
class acceptor {
public:
  virtual ~acceptor();

  /// The endpoint peers can connect to, with anything chosen at listen time
  /// filled in (e.g. the real port for port 0). Thread-safe.
  virtual std::string uri() const = 0;
};

/// Called on an I/O thread for each accepted connection (not yet started).
using accept_callback = std::function<void(connection_ptr)>;

/// A factory for listeners and connections of one URI scheme.
///
/// Thread rules: listen and connect may be called from any thread,
/// concurrently. Errors name the endpoint and the cause.
class transport {
public:
  virtual ~transport();

  /// The URI scheme this transport serves, e.g. "uds".
  virtual std::string scheme() const = 0;

  /// Starts listening on `ep`. Accepted connections go to `on_accept`.
  /// Errors: malformed address, address in use by a live listener,
  /// permissions.
  virtual caf::expected<std::unique_ptr<acceptor>>
  listen(const endpoint& ep, accept_callback on_accept) = 0;

  /// Connects to `ep`, blocking the caller at most options().connect_timeout.
  /// The connection is returned not yet started. Errors: malformed address,
  /// nobody listening, peer refused, timeout.
  virtual caf::expected<connection_ptr> connect(const endpoint& ep) = 0;

  /// Peers this transport refused before handing them to the node (wrong
  /// uid, failed authentication, ...). Each refusal is also logged with the
  /// peer's address and the reason. Thread-safe.
  virtual uint64_t rejected_peers() const noexcept;

  /// Whether connect() to a URI it connected before reaches the same
  /// listener again, so that the node may redial a broken connection and
  /// resume its session (see docs/reconnect.md): true for addresses (tcp,
  /// tls, uds), false for what cannot be dialed twice (an inherited file
  /// descriptor). The default is false.
  virtual bool can_redial() const noexcept;
};

/// Maps URI schemes to transports. Owned by the node.
class transport_registry {
public:
  /// Adds `t` for its scheme. Error if the scheme is taken.
  caf::error add(std::unique_ptr<transport> t);

  /// Returns the transport for `scheme`, or nullptr. Thread-safe after setup.
  transport* find(const std::string& scheme) const;

  /// Sum of transport::rejected_peers over all transports.
  uint64_t rejected_peers() const noexcept;

  /// Lists registered schemes (for error messages).
  std::vector<std::string> schemes() const;

private:
  std::vector<std::unique_ptr<transport>> transports_;
};

/// Registers every transport built into this library. Defined by the
/// transports library (transports/builtin.cpp), one line per transport.
void register_builtin_transports(transport_registry& registry,
                                 const transport_options& options);

/// Declares the options of every built-in transport, each under
/// relay.<scheme>. Defined next to register_builtin_transports.
void declare_builtin_transport_options(const option_declarer& declare);

} // namespace relay
