#pragma once

// Helpers for building frames and for the handshake bodies, which keep
// their layout across protocol versions so that a version mismatch can be
// reported clearly by both sides.

#include <cstdint>
#include <string>

#include <caf/node_id.hpp>

#include "relay/error.hpp"
#include "relay/frame.hpp"
#include "relay/frame_handler.hpp"
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

using relay::begin_frame;
using relay::finish_frame;

/// Body of a hello frame.
struct hello {
  uint32_t pid = 0;
  caf::node_id::default_data::host_id_type incarnation{};
  std::string node_name;
  /// The sender's number for this connection; breaks ties when two nodes
  /// connect to each other at once.
  uint64_t serial = 0;
  /// Capabilities: flag_can_resume, flag_resume, flag_hidden, flag_probe,
  /// flag_bulk;
  /// other bits are reserved
  /// (must be 0; anything else is rejected as a malformed hello).
  uint64_t flags = 0;

  /// The sender can resume this connection's session after a break: it
  /// will redial (initiator) or accept a resuming hello (acceptor). A
  /// session exists when both hellos carry it (see session.hpp).
  static constexpr uint64_t flag_can_resume = 1;
  /// This connection resumes a broken one: a resume_info follows the hello
  /// in the same frame. Only from the initiator.
  static constexpr uint64_t flag_resume = 2;
  /// The sender is a hidden node (node_config::hidden): neither side
  /// reports this connection as a node event.
  static constexpr uint64_t flag_hidden = 4;
  /// The sender answers probe frames with probe_reply (round-trip times,
  /// heartbeat.cpp); the other side sends probes only if this is set.
  static constexpr uint64_t flag_probe = 8;
  /// The sender reads bulk frames (kind 17, large frames as memory files;
  /// docs/wire-protocol.md 2.1); the other side sends them only if this is
  /// set, and only over a transport that passes descriptors.
  static constexpr uint64_t flag_bulk = 16;
  static constexpr uint64_t known_flags = flag_can_resume | flag_resume
                                          | flag_hidden | flag_probe
                                          | flag_bulk;

  /// Longest node name accepted, in bytes.
  static constexpr size_t max_name_size = 256;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(pid, incarnation, node_name, serial, flags);
  }
};

/// What follows a hello with flag_resume: which connection it resumes and
/// how many of that session's sequenced frames the sender dispatched.
struct resume_info {
  /// The session's token: the initiator's serial of the session's first
  /// connection (its hello's serial then).
  uint64_t serial = 0;
  uint64_t dispatched = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(serial, dispatched);
  }
};

/// The error code a peer's reject carries, as a relay::errc: every code
/// this version defines maps to itself; 0 (a non-Relay error) and codes
/// from newer versions become handshake_failed.
inline errc reject_code_to_errc(uint8_t code) {
  return code >= 1 && code <= static_cast<uint8_t>(errc_last)
           ? static_cast<errc>(code)
           : errc::handshake_failed;
}

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
