#pragma once

// How a protocol plugs into a node: a handler per frame kind, looked up in a
// table when a frame arrives. The framework's own protocols (messages,
// monitor/down, link/unlink, lookup, heartbeat, retire) fill kinds below
// first_module_frame_kind; modules register the kinds above it. A peer never
// switches on the kind itself.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include <caf/error.hpp>
#include <caf/node_id.hpp>

#include "relay/frame.hpp"
#include "relay/transport.hpp"
#include "relay/wire_archive.hpp"

namespace relay {

/// What a frame handler sees of the connection a frame arrived on: an
/// established connection to one remote node.
///
/// Thread rules: every member function is thread-safe; a handler may keep a
/// reference only for the duration of its call.
class peer_context {
public:
  virtual ~peer_context();

  /// The remote node.
  virtual const caf::node_id& remote_id() const noexcept = 0;

  /// "'name' at uds:///a.sock (pid 42, uid 1000)", for logs and errors.
  virtual std::string display_name() const = 0;

  /// Sends a frame built with begin_frame/finish_frame. Frames passed by one
  /// thread leave in call order. Never blocks on the peer. Errors:
  /// frame_too_large (relay.max-frame-size), connection_closed.
  virtual caf::error send_frame(frame_buffer frame) = 0;

  /// Closes the connection with `reason`, which is logged with the peer's
  /// name; use errc::protocol_error when the peer broke a protocol.
  virtual void close(const caf::error& reason) = 0;
};

/// Handles the body of one frame kind. `body` reads the frame body; it
/// resolves actor references in the body through the connection, so a
/// handler reads a `caf::actor` or `caf::strong_actor_ptr` like any value.
/// (Writing one needs the connection's codec, which modules do not have:
/// module frames carry plain values; send actor handles inside messages.)
///
/// Thread rules: called on the connection's I/O thread, one frame at a time
/// per connection, in arrival order; must not block. Errors: a handler that
/// throws (wire_error for a short or malformed body) closes the connection
/// as a protocol error whose log line names the peer and the frame kind; a
/// handler that can fail a single request without closing must answer it
/// itself instead of throwing.
using frame_handler = std::function<void(peer_context& from, wire_reader& body)>;

/// The handlers of a node, by frame kind.
///
/// Thread rules: add() only while the node is being set up (the node's
/// constructor and module start); find() from any thread afterwards.
class frame_table {
public:
  /// Registers `handler` for `kind`, named `name` in log lines. Errors:
  /// already_registered (the kind is taken; the message names the owner),
  /// invalid_argument (kind 0, a handshake kind, or an empty handler). The
  /// node's own add_frame_handler also keeps modules to kinds from
  /// first_module_frame_kind up.
  caf::error add(uint8_t kind, std::string name, frame_handler handler);

  /// The handler for `kind`, or null.
  const frame_handler* find(uint8_t kind) const noexcept {
    auto& e = entries_[kind];
    return e.handler ? &e.handler : nullptr;
  }

  /// The name given to add() for `kind`, or "kind <n>" if none.
  std::string name_of(uint8_t kind) const;

private:
  struct entry {
    std::string name;
    frame_handler handler;
  };
  std::array<entry, 256> entries_;
};

/// A buffer with room for the header; append the body with a wire_writer,
/// then call finish_frame.
inline frame_buffer begin_frame(size_t expected_body = 64) {
  frame_buffer buf;
  buf.reserve(frame_header::size + expected_body);
  buf.resize(frame_header::size);
  return buf;
}

/// Writes the header for `kind` in front of the body in `buf`.
inline void finish_frame(frame_buffer& buf, uint8_t kind) {
  frame_header hdr;
  hdr.kind = static_cast<frame_kind>(kind);
  hdr.length = static_cast<uint32_t>(buf.size() - frame_header::size);
  hdr.write(buf.data());
}

inline void finish_frame(frame_buffer& buf, frame_kind kind) {
  finish_frame(buf, static_cast<uint8_t>(kind));
}

} // namespace relay
