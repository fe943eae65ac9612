#pragma once

// Cluster membership for Relay nodes: nodes join through seeds, form a full
// mesh over authenticated tcp, detect failures with a phi-accrual detector
// and agree on who is a member. See docs/cluster.md.

#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/send.hpp>
#include <caf/timespan.hpp>

#include "relay/cluster_member.hpp"
#include "relay/cluster_registry.hpp"
#include "relay/node_module.hpp"

namespace relay {

class node;
class node_config;

/// The cluster module (embedded backend: no server besides the nodes).
/// Add it to a configuration and keep the reference; it is the node's
/// cluster API:
///
///   auto& cluster = cfg.add_module<relay::cluster_module>();
///   relay::node n{cfg};
///   cluster.join({"tcp://10.0.0.1:4370"});
///
/// Options (relay.cluster.*; durations as CAF parses them, e.g. "500ms"):
///
///   name                      cluster name; nodes of another cluster are
///                             refused ("relay")
///   seeds                     addresses to join through; joining starts
///                             with the node when set ([])
///   listen                    where members connect ("tcp://127.0.0.1:0":
///                             loopback, a free port; tcp authenticates with
///                             the node's secret)
///   advertise                 the address other members dial, if not the
///                             listen address (NAT, a proxy)
///   heartbeat-interval        heartbeats to each member (200ms)
///   phi-threshold             suspect a member at this phi (8)
///   acceptable-heartbeat-pause  silence tolerated on top of the mean
///                             interval (500ms)
///   min-std-deviation         floor of the detector's deviation (100ms)
///   down-after                an unreachable member is declared down after
///                             this long, by the side that still reaches a
///                             majority (10s)
///   retry-interval            between join attempts and first redial of a
///                             member (500ms; redials back off to 8 times)
///   seed-timeout              the first seed forms a new cluster when no
///                             other seed admits it in this time (2s)
///   gossip-interval           anti-entropy gossip to one member (1s)
///   leave-on-stop             leave gracefully when the node stops (true)
///
/// Thread rules: every member function is thread-safe; the blocking ones
/// say how long they block. The module must be used only while its node
/// exists (between the node's constructor and destructor).
class cluster_module : public node_module {
public:
  cluster_module();
  ~cluster_module() override;

  /// Joins the cluster through `seeds` (cluster addresses of members, e.g.
  /// "tcp://127.0.0.1:4370"). Returns at once; the module keeps trying
  /// every retry-interval until a seed admits it. If this node's own
  /// address is the first seed and no other seed admits it within
  /// seed-timeout, it forms a new cluster. With no seeds but itself, it
  /// forms one at once. Errors: invalid_argument (no seeds, the node not
  /// started, already joining or joined).
  caf::error join(std::vector<std::string> seeds);

  /// Blocks until this node is up (a member), up to `timeout`. Errors:
  /// peer_rejected (a seed refused for good: another cluster name, or this
  /// incarnation was removed; the text says which), connect_timeout (still
  /// joining), connection_closed (the node left or was removed).
  caf::error wait_up(caf::timespan timeout);

  /// Leaves gracefully: this node is left, every member hears it at once,
  /// the leader removes it, and then (or after 2 s without a leader) it
  /// closes its connections to members. Blocks until then. A node cannot rejoin after
  /// leaving; a new process (a new incarnation) can.
  void leave();

  /// The members as this node sees them, by address (removed ones not
  /// included). Blocks up to one second; empty if the module is stopping.
  std::vector<member_info> members() const;

  /// `observer` receives a member_event for each member's current status
  /// (and `unreachable` where so), then every change, until it terminates
  /// or demonitor_cluster. For one member, events arrive in the order of
  /// member_event's contract.
  void monitor_cluster(const caf::actor& observer);

  /// Undoes monitor_cluster.
  void demonitor_cluster(const caf::actor& observer);

  // -- cluster-wide names (Erlang's global) ----------------------------------

  /// Registers local actor `holder` under `name` on every member: agreed
  /// with every reachable member (each locks the name, none may hold it),
  /// as Erlang's global:register_name/2. Blocks until agreed, at most a few
  /// seconds under contention. The name goes when the holder terminates
  /// (everywhere) and when its node goes down (on the other nodes). See
  /// docs/cluster.md for what holds during a partition. Errors:
  /// already_registered (the text names the holder), invalid_argument (a
  /// null or remote handle, an empty name, not a member), lookup_timeout
  /// (contention did not end).
  caf::error register_name(const std::string& name, const caf::actor& holder);

  /// Withdraws a name held by a local actor. Returns whether it did.
  bool unregister_name(const std::string& name);

  /// The holder of `name` in this node's table, or a null handle. Any
  /// member answers for any name, without asking others.
  caf::actor whereis_name(const std::string& name) const;

  /// Every name in this node's table.
  std::vector<std::string> registered_names() const;

  // -- process groups (Erlang's pg) ------------------------------------------

  /// Adds local actor `member` to `group`; every member node learns it. It
  /// leaves when it terminates, and on the other nodes when its node goes
  /// down. Joining twice has no effect. Errors: invalid_argument (a null or
  /// remote handle).
  caf::error join_group(const std::string& group, const caf::actor& member);

  /// Removes local actor `member` from `group`. Returns whether it was in.
  bool leave_group(const std::string& group, const caf::actor& member);

  /// The members of `group` known here (local and remote), in join order
  /// per node.
  std::vector<caf::actor> group_members(const std::string& group) const;

  /// One member of `group` by `policy` (`key` for consistent_hash), or a
  /// null handle if the group is empty.
  caf::actor pick(const std::string& group, pick_policy policy,
                  const std::string& key = "") const;

  /// Sends `xs...` to every member of `group` (anonymously; the members
  /// cannot answer). Returns how many it sent to.
  template <class... Ts>
  size_t broadcast(const std::string& group, Ts&&... xs) {
    auto members = group_members(group);
    for (auto& m : members)
      caf::anon_send(m, xs...);
    return members.size();
  }

  /// The address other members dial (empty before the node started).
  std::string address() const;

  /// The address the module listens on (relay.cluster.listen with the
  /// port filled in); differs from address() when advertise is set.
  std::string listen_address() const;

  /// The actor behind the module, for tools and tests.
  caf::actor actor() const;

  /// The registry actor (names and groups), for tools and tests.
  caf::actor registry() const;

  // -- node_module -----------------------------------------------------------

  std::string name() const override;
  void configure(node_config& cfg) override;
  void start(node& n) override;
  void stop(node& n) override;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace relay
