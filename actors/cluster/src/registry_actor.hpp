#pragma once

// The registry actor of the embedded backend: cluster-wide names (Erlang's
// global) and process groups (Erlang's pg). Each member runs one, published
// as registry_name; registries talk to each other with ordinary messages
// (so actor handles travel as handles) and only to registries of members.
//
// Names (embedded): a registration locks the name on every reachable member (as
// global:set_lock/2 does), checks that nobody holds it, commits it
// everywhere and unlocks; contention backs off at random and retries.
// Every member keeps the whole table. A holder's own node withdraws it when
// the holder ends; every node drops a node's entries when that node goes
// down (the remote registry's DOWN). When two sides of a healed partition
// both registered a name, every node keeps the same one (smaller node id,
// then actor id) and the loser's node tells it (global_name_conflict).
//
// Groups: each node owns its local members and tells every other registry
// of each join and leave; on discovery they exchange their local members
// (pg's sync). A node's members leave every group when it goes down.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>

#include "relay/cluster_registry.hpp"
#include "relay/message_registry.hpp"

namespace relay {
class node;
class node_config;
} // namespace relay

namespace relay::cluster_detail {

class helper_gate;
class etcd_session;

/// The name under which every member publishes its registry.
constexpr const char* registry_name = "relay.cluster.registry";

/// A group membership or a name, as registries exchange them.
struct registry_entry {
  std::string key; // group or name
  caf::actor actor;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(key, actor);
  }
};

/// What a registry sends a registry it discovers: its local group members
/// and the names its local actors hold.
struct registry_sync {
  std::vector<registry_entry> groups;
  std::vector<registry_entry> names;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(groups, names);
  }
};

// Between registries.
using gl_lock_atom = caf::atom_constant<caf::atom("rgllock")>;
using gl_commit_atom = caf::atom_constant<caf::atom("rglcommit")>;
using gl_release_atom = caf::atom_constant<caf::atom("rglrel")>;
using gl_unreg_atom = caf::atom_constant<caf::atom("rglunreg")>;
using pg_join_atom = caf::atom_constant<caf::atom("rpgjoin")>;
using pg_leave_atom = caf::atom_constant<caf::atom("rpgleave")>;

// From the module (local).
using reg_name_atom = caf::atom_constant<caf::atom("rregname")>;
using unreg_name_atom = caf::atom_constant<caf::atom("runregname")>;
using whereis_atom = caf::atom_constant<caf::atom("rwhereis")>;
using names_atom = caf::atom_constant<caf::atom("rnames")>;
using grp_join_atom = caf::atom_constant<caf::atom("rgjoin")>;
using grp_leave_atom = caf::atom_constant<caf::atom("rgleave")>;
using grp_members_atom = caf::atom_constant<caf::atom("rgmembers")>;
using grp_pick_atom = caf::atom_constant<caf::atom("rgpick")>;

/// Registers the message types registries exchange.
void add_registry_types(node_config& cfg);

/// The registry actor; `cluster` is the node's cluster actor (for member
/// events). `n` outlives it. With `etcd` (the etcd backend), a name is
/// taken by a transaction in etcd under this node's lease instead of lock
/// rounds; the tables, groups and withdrawal work as in the embedded one.
caf::behavior registry_actor(caf::event_based_actor* self, node* n,
                             caf::actor cluster,
                             std::shared_ptr<helper_gate> gate,
                             std::shared_ptr<etcd_session> etcd);

} // namespace relay::cluster_detail

RELAY_MESSAGE_TYPE(relay::cluster_detail::registry_entry,
                   "relay.cluster.registry_entry")
RELAY_MESSAGE_TYPE(relay::cluster_detail::registry_sync,
                   "relay.cluster.registry_sync")
