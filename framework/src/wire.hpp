#pragma once

// Helpers for building frames and for the handshake bodies, which keep
// their layout across protocol versions so that a version mismatch can be
// reported clearly by both sides.

#include <cstdint>
#include <string>

#include <caf/node_id.hpp>

#include "relay/frame.hpp"
#include "relay/transport.hpp"
#include "relay/wire_archive.hpp"

namespace relay::wire {

/// Tags of an actor reference in a frame body, from the writer's view.
enum class ref_tag : uint8_t {
  null = 0,         ///< no actor
  sender_node = 1,  ///< an actor on the node that wrote the frame: u64 aid
  receiver_node = 2,///< an actor on the node that reads the frame: u64 aid
  other_node = 3,   ///< u32 pid, 20-byte incarnation, u64 aid
};

/// Status of a lookup reply.
enum class lookup_status : uint8_t { found = 0, not_found = 1 };

/// A buffer with room for the header; the body follows.
inline frame_buffer begin_frame(size_t expected_body = 64) {
  frame_buffer buf;
  buf.reserve(frame_header::size + expected_body);
  buf.resize(frame_header::size);
  return buf;
}

/// Writes the header for `kind` in front of the body in `buf`.
inline void finish_frame(frame_buffer& buf, frame_kind kind) {
  frame_header hdr;
  hdr.kind = kind;
  hdr.length = static_cast<uint32_t>(buf.size() - frame_header::size);
  hdr.write(buf.data());
}

/// Body of a hello frame.
struct hello {
  uint32_t pid = 0;
  caf::node_id::default_data::host_id_type incarnation{};
  std::string node_name;
  /// The sender's number for this connection; breaks ties when two nodes
  /// connect to each other at once.
  uint64_t serial = 0;
  /// Reserved for capabilities (authentication schemes); 0 in version 1.
  uint64_t flags = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(pid, incarnation, node_name, serial, flags);
  }
};

/// Body of a reject frame.
struct reject {
  /// A relay::errc value.
  uint8_t code = 0;
  /// The protocol version of the rejecting node.
  uint8_t version = frame_header::current_version;
  std::string reason;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(code, version, reason);
  }
};

} // namespace relay::wire
