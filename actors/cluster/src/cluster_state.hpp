#pragma once

// The cluster actor's state, shared by its three parts:
// - cluster_actor.cpp: the API, node events, dialing, heartbeats and the
//   detectors' verdicts, which are the same for both backends;
// - cluster_embedded.cpp: joining through seeds, gossip, the leader's
//   duties (the embedded backend);
// - cluster_etcd.cpp: the lease, the keys and the watch (the etcd
//   backend).
// Internal to the cluster actor: every member runs on its thread.

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/message_handler.hpp>
#include <caf/response_promise.hpp>

#include "cluster_actor.hpp"

namespace relay::cluster_detail {

/// How long a leaving node waits to hear it was removed.
constexpr auto leave_timeout = std::chrono::seconds{2};

struct dial_state {
  clock::time_point next_attempt;
  clock::duration backoff{};
  bool in_flight = false;
};

struct cluster_state {
  caf::event_based_actor* self = nullptr;
  node* n = nullptr;
  settings cfg;
  membership members;
  std::mt19937_64 rng{std::random_device{}()};

  // Joining.
  bool joining = false;
  std::vector<std::string> seeds;   // without our own address
  bool first_seed = false;          // may form a new cluster
  clock::time_point join_started;
  clock::time_point next_join_attempt;
  caf::error join_failure;          // a refusal (final, but for etcd's)
  std::string join_problem;         // what delays joining, if anything
  std::vector<caf::response_promise> up_waiters;
  std::unordered_map<caf::node_id, std::string> seed_of; // dialed seeds

  // Connections and detection.
  std::unordered_set<caf::node_id> connected;
  std::shared_ptr<detector_table> detectors;
  std::shared_ptr<helper_gate> gate;
  std::unordered_map<std::string, dial_state> dials; // by address
  // Members not connected, since when (for the dial grace period).
  std::unordered_map<caf::node_id, clock::time_point> unconnected_since;
  clock::time_point next_gossip;
  bool quarantined = false;
  // Leaving: answered once removed (or at the deadline).
  std::vector<caf::response_promise> leave_waiters;
  std::optional<clock::time_point> leave_deadline;

  std::vector<caf::actor> observers;

  // The etcd backend (null: embedded).
  std::shared_ptr<etcd_session> etcd;
  bool etcd_open = false;        // the lease is granted
  bool etcd_synced = false;      // the first full read arrived
  // Before writing our key, members are dialed one by one until one
  // accepts our credentials (etcd_verified).
  std::string verifying;                  // the member being dialed
  std::unordered_set<std::string> verify_tried;
  caf::error verify_refusal;              // the last refusal
  std::optional<clock::time_point> next_verify; // after all refused
  bool announced = false;                 // our key is written (up)
  uint64_t row_written = 0;      // version of our row in etcd
  bool row_in_flight = false;    // a write of our row is under way
  std::unordered_set<caf::node_id> downing; // member keys we deleted

  cluster_state(caf::event_based_actor* self, node* n, settings cfg,
                member_info me)
    : self(self),
      n(n),
      cfg(std::move(cfg)),
      members(this->cfg.cluster, std::move(me)) {
    // nop
  }

  const member_info& me() const {
    return *members.find(members.self());
  }

  /// "'name' at address" of a member (its id if unknown).
  std::string who(const caf::node_id& id) const;

  /// Whether `id` is a member not yet down or removed.
  bool is_member(const caf::node_id& id) const;

  /// Sends a module frame; a failure is only logged (the connection is
  /// gone, which the node reports separately).
  void send(const caf::node_id& to, frame_buffer frame);

  /// Makes a change of this node's state known: gossip to every member
  /// (embedded), or this node's observation row written to etcd.
  void spread();

  void gossip_to_all();

  /// Starts a failure detector (and so heartbeats) for a connected member.
  void track(const caf::node_id& id);

  /// Answers every wait_up (error: why this node is no member).
  void answer_waiters(const caf::error& err);

  /// Dials `address` on a helper thread (node::connect blocks); the result
  /// comes back as dial_done.
  void dial(const std::string& address);

  /// Applies the consequences of membership events and tells observers.
  void publish(std::vector<member_event> events);
};

using state_ptr = std::shared_ptr<cluster_state>;

// -- the embedded backend (cluster_embedded.cpp) ------------------------------

/// Starts joining through `seeds`.
void embedded_join(cluster_state& st, std::vector<std::string> seeds);

/// After this node marked itself left: waits for the leader to remove it
/// (answering `rp` then), or removes itself if there is nobody to wait for.
void embedded_leave(cluster_state& st, caf::response_promise rp);

/// The backend's share of the tick (after dials and heartbeats).
void embedded_tick(cluster_state& st, clock::time_point now);

/// Frames of the embedded backend (join, join reply, gossip).
caf::message_handler embedded_handlers(state_ptr st);

// -- the etcd backend (cluster_etcd.cpp) --------------------------------------

void etcd_join(cluster_state& st);

void etcd_leave(cluster_state& st, caf::response_promise rp);

void etcd_tick(cluster_state& st, clock::time_point now);

/// The dial of a member that checks our credentials ended.
void etcd_verified(cluster_state& st, const dial_done& msg);

/// Dials the next member to check our credentials with, or announces this
/// node when one accepted or nobody is left to ask.
void etcd_verify_next(cluster_state& st);

/// The session's messages, and the embedded backend's frames (refused).
caf::message_handler etcd_handlers(state_ptr st);

} // namespace relay::cluster_detail
