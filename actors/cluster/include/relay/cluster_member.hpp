#pragma once

// What a cluster member is and what observers of the cluster receive. The
// names are Akka Cluster's (joining, up, unreachable, down, removed) with
// Erlang's "left" for a graceful exit.

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>
#include <caf/node_id.hpp>

namespace relay {

/// A member's status. It only moves forward, in this order, which is what
/// lets every member merge what it hears without consensus:
///
///   joining -> up -> left -> down -> removed
///
/// (left and down are alternatives: a member that leaves gracefully is
/// removed after left; one that fails is marked down, then removed.)
/// Reachability is separate (member_info::reachable): an up member can be
/// unreachable and become reachable again.
enum class member_status : uint8_t {
  joining = 0, ///< asked to join; not yet counted
  up = 1,      ///< a full member
  left = 2,    ///< announced a graceful exit
  down = 3,    ///< declared failed (unreachable past relay.cluster.down-after)
  removed = 4, ///< gone for good; this incarnation can never come back
};

/// "joining", "up", ...
const char* to_string(member_status x) noexcept;

/// One member as a node sees it.
struct member_info {
  /// The member's node (process and incarnation).
  caf::node_id node;
  /// Its relay.node-name.
  std::string name;
  /// The address other members dial (relay.cluster.advertise).
  std::string address;
  member_status status = member_status::joining;
  /// False while some member's failure detector suspects it.
  bool reachable = true;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_info& x) {
  return f(caf::meta::type_name("relay.member_info"), x.node, x.name,
           x.address, x.status, x.reachable);
}

/// What changed.
enum class member_event_kind : uint8_t {
  joining,     ///< a node asked to join
  up,          ///< it became a member
  unreachable, ///< a failure detector suspects it
  reachable,   ///< no detector suspects it anymore
  left,        ///< it announced a graceful exit
  down,        ///< it was declared failed
  removed,     ///< it is gone; its node id will never be a member again
};

const char* to_string(member_event_kind x) noexcept;

/// A change of one member, as delivered to observers
/// (cluster::monitor_cluster). `member` is the member after the change.
/// For a given member, every node delivers its events in the order
/// joining, up, [unreachable, reachable]..., left or down, removed. A node
/// reports the statuses it observes: one that learns of a member late
/// starts with the member's status then, and one that hears of two steps
/// at once (after a partition, say) reports only the later one, so a step
/// may be missing but the order never differs.
struct member_event {
  member_event_kind kind = member_event_kind::joining;
  member_info member;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_event& x) {
  return f(caf::meta::type_name("relay.member_event"), x.kind, x.member);
}

} // namespace relay
