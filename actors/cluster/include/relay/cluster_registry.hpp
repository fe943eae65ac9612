#pragma once

// Cluster-wide names (Erlang's global) and process groups (Erlang's pg),
// as seen by users of relay::cluster_module. See docs/cluster.md for what
// each backend guarantees.

#include <string>

#include <caf/actor.hpp>

#include "relay/message_registry.hpp"

namespace relay {

/// How cluster_module::pick chooses one member of a group.
enum class pick_policy {
  /// Uniformly at random.
  random,
  /// In turn, per group, on the node that picks.
  round_robin,
  /// By a key: the same key picks the same member on every node while the
  /// group does not change, and a change moves only about 1/n of the keys
  /// (a hash ring with 64 points per member, FNV-1a 64).
  consistent_hash,
};

/// Sent to an actor that lost its cluster-wide name when two partitions
/// that each registered `name` merged (as Erlang's global tells the loser).
/// `winner` holds the name now. The rule is deterministic: the holder with
/// the smaller (node id, actor id) keeps it, on every node alike.
struct global_name_conflict {
  std::string name;
  caf::actor winner;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, winner);
  }
};

} // namespace relay

RELAY_MESSAGE_TYPE(relay::global_name_conflict, "relay.global_name_conflict")
