#pragma once

// The cluster module's frames (kinds from first_module_frame_kind) and how
// their bodies are written and checked. Every count, length and node id a
// peer sends is checked here, on the I/O thread, before the cluster actor
// sees it; a violation throws wire_error, which closes that one connection.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/node_id.hpp>

#include "membership.hpp"
#include "relay/frame_handler.hpp"
#include "relay/wire_archive.hpp"

namespace relay::cluster_detail {

/// Frame kinds of the cluster module.
enum class cluster_frame : uint8_t {
  join = 64,       ///< a node asks a member to join: cluster name, itself
  join_reply = 65, ///< welcome (with the state) or refusal (with a reason)
  gossip = 66,     ///< the whole membership state
  heartbeat = 67,  ///< empty; feeds the receiver's phi-accrual detector
  gossip_reply = 68, ///< the whole state, answering gossip; not answered
};

/// Bounds on what a peer may send.
struct limits {
  static constexpr size_t max_members = 4096;
  static constexpr size_t max_name_size = 256;
  static constexpr size_t max_address_size = 1024;
  static constexpr size_t max_reason_size = 4096;
};

struct join_request {
  std::string cluster;
  member_info joiner;
};

struct join_reply {
  /// Whether the joiner was admitted.
  bool welcome = false;
  /// Whether a refusal is final (another cluster, a removed incarnation) or
  /// worth a retry (the seed is not a member yet).
  bool final = false;
  std::string reason;
  gossip_state state;
};

void write(wire_writer& out, const caf::node_id& x);
void write(wire_writer& out, const member_info& x);
void write(wire_writer& out, const gossip_state& x);
void write(wire_writer& out, const join_request& x);
void write(wire_writer& out, const join_reply& x);

caf::node_id read_node(wire_reader& in);
member_info read_member(wire_reader& in);
gossip_state read_gossip(wire_reader& in);
join_request read_join_request(wire_reader& in);
join_reply read_join_reply(wire_reader& in);

/// A complete frame of `kind` whose body is `x`.
template <class T>
frame_buffer make_frame(cluster_frame kind, const T& x) {
  auto buf = begin_frame(256);
  wire_writer out{buf};
  write(out, x);
  finish_frame(buf, static_cast<uint8_t>(kind));
  return buf;
}

inline frame_buffer make_heartbeat() {
  auto buf = begin_frame(0);
  finish_frame(buf, static_cast<uint8_t>(cluster_frame::heartbeat));
  return buf;
}

} // namespace relay::cluster_detail
