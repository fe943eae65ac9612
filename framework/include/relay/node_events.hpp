#pragma once

// What a node reports about other nodes: as messages to observer actors
// (node::monitor_nodes, node::monitor_node) and as calls on listeners for
// C++ code in the process (node::add_listener, for modules).

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/node_id.hpp>
#include <caf/timestamp.hpp>

#include "relay/latency_histogram.hpp"

namespace relay {

/// A connection to `node` completed its handshake and the node was not
/// connected before. `uri` is the address we dialed, or, for a node that
/// connected to us, the transport's description of it.
struct node_up_msg {
  caf::node_id node;
  std::string name;
  std::string uri;
};

/// The last connection to `node` ended. `reason` says why: closed by this
/// node (connection_closed, "disconnected by this node" / "shutting down"),
/// by the peer (connection_closed, "peer closed the connection"), broken
/// (the transport's error), or silent for too long (heartbeat_timeout).
struct node_down_msg {
  caf::node_id node;
  caf::error reason;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_up_msg& x) {
  return f(caf::meta::type_name("relay.node_up_msg"), x.node, x.name, x.uri);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_down_msg& x) {
  return f(caf::meta::type_name("relay.node_down_msg"), x.node, x.reason);
}

/// A snapshot of one connected node (node::peers()).
struct peer_info {
  caf::node_id node;
  /// The remote node's name (relay.node-name).
  std::string name;
  /// As in node_up_msg.
  std::string uri;
  /// The URI scheme of the connection, e.g. "uds".
  std::string transport;
  /// When the handshake completed (system clock).
  caf::timestamp since;
  /// Whole frames (header included in bytes) since the handshake started.
  uint64_t frames_in = 0;
  uint64_t frames_out = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  /// Actor messages (requests and responses included) from the remote
  /// handed to local actors, and sent to the remote.
  uint64_t messages_in = 0;
  uint64_t messages_out = 0;
  /// Bytes handed to the connection and not yet written to the transport.
  uint64_t queued_bytes = 0;
  /// Wire bytes of messages from the remote delivered to local mailboxes
  /// and not yet processed there.
  uint64_t inbound_bytes = 0;
  /// Reading is paused because inbound_bytes reached
  /// relay.max-inbound-bytes: silence from the remote means nothing now.
  bool inbound_paused = false;
  /// The remote is a hidden node (node_config::hidden), e.g. relayctl.
  bool hidden = false;
  /// Round trips of the heartbeat's probes on this connection (one per
  /// relay.heartbeat-interval; rtt.count == 0 until the first answer, and
  /// always for a remote that does not answer probes).
  latency_histogram::snapshot rtt;
};

/// Receives node events inside the process (for modules).
///
/// Thread rules: called on a transport I/O thread, one event at a time for
/// the whole node, in the order the events happened: for each node, up
/// before down and exactly one down per up. A listener must not block; it
/// may call the node's event functions (monitor_node, add_listener, ...).
class node_listener {
public:
  virtual ~node_listener();

  /// `info.node` is connected now (first connection to it).
  virtual void on_node_up(const peer_info& info);

  /// `node` is no longer connected. Every proxy of it reported DOWN and
  /// every request to it failed before this call.
  virtual void on_node_down(const caf::node_id& node, const caf::error& reason);
};

} // namespace relay
