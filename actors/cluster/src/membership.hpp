#pragma once

// The embedded backend's membership: a state that every member keeps, that
// members exchange whole (gossip) and merge, and whose changes become
// member_events. Pure: no actors, no sockets, time passed in, so that unit
// tests drive every rule.
//
// The state is a join-semilattice, which is why no consensus is needed for
// it to converge:
// - each member's status only moves forward (member_status order), merged
//   by taking the later one;
// - reachability is one row per observer (version, the members it cannot
//   reach), owned by that observer, merged by the higher version; a member
//   is unreachable while the row of this node, or of a live observer this
//   node still reaches, lists it (Akka Cluster's reachability table, kept
//   as rows so that a healthy cluster gossips nothing but versions; as
//   seen from this node's side of a partition).
// Decisions that are not merges (joining -> up, unreachable -> down,
// left/down -> removed) are taken by the leader: the first reachable up
// member by address order. Two nodes that both think they lead take the
// same monotone steps, so they cannot disagree on the result, only on its
// timing.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/node_id.hpp>

#include "relay/cluster_member.hpp"

namespace relay::cluster_detail {

using clock = std::chrono::steady_clock;

/// What one observer cannot reach, as of `version` (its own counter).
struct observation_row {
  caf::node_id observer;
  uint64_t version = 0;
  std::vector<caf::node_id> unreachable;
};

/// What members gossip: the whole state.
struct gossip_state {
  std::string cluster;
  std::vector<member_info> members; // reachable is not meaningful here
  std::vector<observation_row> rows;
};

/// How the partition resolver (split brain resolver) decides, when members
/// stay unreachable past down_after. Akka's keep-majority: the side that
/// still reaches more than half of the members downs the others; a side
/// that reaches fewer downs itself; on a tie, the side holding the member
/// with the lowest address stays.
enum class downing_result { none, down_others, down_self };

/// What the etcd backend's leader does on a tick (plan_downing): the same
/// keep-majority verdict as tick(), carried out by deleting member keys.
struct downing_plan {
  /// This node is on the minority side past down_after: it removes itself.
  bool down_self = false;
  /// Members this node (the leader) downs.
  std::vector<caf::node_id> down;
};

class membership {
public:
  /// Tombstones kept for removed members (oldest forgotten first).
  static constexpr size_t max_tombstones = 1024;

  membership(std::string cluster, member_info self);

  const std::string& cluster() const noexcept {
    return cluster_;
  }

  const caf::node_id& self() const noexcept {
    return self_;
  }

  /// The member record of `node`, if any (removed ones included).
  const member_info* find(const caf::node_id& node) const;

  /// Every member not removed, by address, with reachable filled in.
  std::vector<member_info> members() const;

  /// This node's own status.
  member_status self_status() const;

  /// Whether `node` was a member and is removed (a tombstone).
  bool is_removed(const caf::node_id& node) const;

  // -- changes; each returns the events it caused, in order ------------------

  /// This node forms a new cluster on its own: it is up and the leader.
  std::vector<member_event> form(clock::time_point now);

  /// A member (this node) admits `joiner`: it becomes joining. A member of
  /// another incarnation at the same address is downed first (it
  /// restarted). Fails (nullopt) if `joiner` was removed.
  std::optional<std::vector<member_event>> admit(const member_info& joiner,
                                                 clock::time_point now);

  /// Merges a state received from another member.
  std::vector<member_event> merge(const gossip_state& other,
                                  clock::time_point now);

  /// Records this node's own observation of `subject`.
  std::vector<member_event> observe(const caf::node_id& subject,
                                    bool reachable, clock::time_point now);

  /// This node leaves gracefully: left, then (for itself) removed.
  std::vector<member_event> leave(clock::time_point now);

  /// This node learned it is no longer wanted (downed by the others, or
  /// on the minority side): it marks itself down and removed.
  std::vector<member_event> remove_self(clock::time_point now);

  /// The leader's periodic duties, if this node leads: joining -> up for
  /// reachable joiners, left and down -> removed, and the downing of
  /// members unreachable for down_after by keep-majority. On a minority
  /// side past down_after it removes itself instead.
  std::vector<member_event> tick(clock::time_point now,
                                 clock::duration down_after);

  // -- the etcd backend: etcd decides, this class only keeps the view --------

  /// `node`'s key is gone from etcd (lease expired or revoked, or deleted
  /// by the leader): down (unless it had left), then removed. For this
  /// node itself, as remove_self().
  std::vector<member_event> expel(const caf::node_id& node,
                                  clock::time_point now);

  /// The downing that tick() would do, as a plan for the etcd backend
  /// (which carries it out through etcd instead of changing the state).
  downing_plan plan_downing(clock::time_point now,
                            clock::duration down_after) const;

  /// This node's own observation row (what it cannot reach).
  observation_row own_row() const;

  /// The state to gossip.
  gossip_state snapshot() const;

  /// The leader as this node sees it (null if there is none).
  caf::node_id leader() const;

  /// Whether `node` is currently unreachable in this node's view.
  bool unreachable(const caf::node_id& node) const;

  /// The partition resolver's verdict now (exposed for tests).
  downing_result resolve(clock::time_point now,
                         clock::duration down_after) const;

private:
  struct view_entry {
    member_status status;
    bool reachable;
  };
  using view = std::map<caf::node_id, view_entry>;

  view current_view() const;

  /// Events between two views, in a fixed order per member.
  std::vector<member_event> diff(const view& before, clock::time_point now);

  /// Sets `node`'s status if it moves forward.
  void advance(const caf::node_id& node, member_status to);

  bool counts_as_observer(const caf::node_id& node) const;

  void prune(); // drops rows of removed observers, old tombstones

  /// Recomputes unreachable_ from the rows.
  void refresh_reachability();

  std::string cluster_;
  caf::node_id self_;
  std::map<caf::node_id, member_info> members_;
  std::map<caf::node_id, observation_row> rows_;
  // When each member became unreachable in this node's view (local clock).
  std::unordered_map<caf::node_id, clock::time_point> unreachable_since_;
  std::vector<caf::node_id> tombstone_order_;
  // Members some counting observer holds unreachable (refresh_reachability).
  std::set<caf::node_id> unreachable_;
};

} // namespace relay::cluster_detail
