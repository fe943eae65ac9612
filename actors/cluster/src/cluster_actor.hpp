#pragma once

// The actor that runs a node's membership: it owns the membership state,
// the failure detectors and the dialing; frame handlers (I/O threads) and
// the node listener only decode and post to it.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/error.hpp>
#include <caf/stateful_actor.hpp>

#include "cluster_wire.hpp"
#include "etcd_session.hpp"
#include "membership.hpp"
#include "relay/phi_accrual.hpp"

namespace relay {
class node;
}

namespace relay::cluster_detail {

struct settings {
  std::string cluster = "relay";
  std::vector<std::string> seeds;
  std::string listen = "tcp://127.0.0.1:0";
  std::string advertise;
  clock::duration heartbeat_interval = std::chrono::milliseconds{200};
  phi_accrual_detector::settings detector;
  clock::duration down_after = std::chrono::seconds{10};
  clock::duration retry_interval = std::chrono::milliseconds{500};
  clock::duration seed_timeout = std::chrono::seconds{2};
  clock::duration gossip_interval = std::chrono::seconds{1};
  bool leave_on_stop = true;
  /// "embedded" (gossip among the members) or "etcd".
  std::string backend = "embedded";
  etcd_settings etcd;
};

/// The failure detectors, by member. Shared by the cluster actor (which adds,
/// removes and judges them) and the heartbeat frame handler, which records
/// arrivals on the I/O thread without a message per heartbeat.
///
/// Thread rules: thread-safe (one mutex; every call is short).
class detector_table {
public:
  explicit detector_table(phi_accrual_detector::settings cfg) : cfg_(cfg) {
    // nop
  }

  /// Starts a detector for `id` unless it has one; the start counts as
  /// its first heartbeat. Returns whether it added one.
  bool track(const caf::node_id& id, clock::time_point now);

  void forget(const caf::node_id& id);

  bool contains(const caf::node_id& id) const;

  /// A heartbeat of `id` arrived at `now` (ignored if not tracked).
  void heartbeat(const caf::node_id& id, clock::time_point now);

  struct suspect {
    caf::node_id node;
    double phi = 0;
    clock::duration silent{};
  };

  /// The tracked members, and those suspected at `now`.
  std::vector<caf::node_id> tracked() const;
  std::vector<suspect> suspects(clock::time_point now) const;

  const phi_accrual_detector::settings& config() const noexcept {
    return cfg_;
  }

private:
  phi_accrual_detector::settings cfg_;
  mutable std::mutex mtx_;
  std::unordered_map<caf::node_id, phi_accrual_detector> map_;
};

/// Counts the helper threads that use the node (dials, lookups), so that the
/// module's stop can close the gate and wait for them before the node goes.
///
/// Thread rules: thread-safe.
class helper_gate {
public:
  /// Admits a helper unless the gate is closed.
  bool enter() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_)
      return false;
    ++running_;
    return true;
  }

  void leave() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (--running_ == 0)
      cv_.notify_all();
  }

  /// Closes the gate and waits up to `bound` for the helpers inside.
  bool close_and_wait(std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> guard{mtx_};
    closed_ = true;
    return cv_.wait_for(guard, bound, [this] { return running_ == 0; });
  }

  /// Leaves the gate when it goes out of scope (held by an entered helper).
  struct pass {
    explicit pass(helper_gate& g) : gate(g) {
    }
    ~pass() {
      gate.leave();
    }
    helper_gate& gate;
  };

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  int running_ = 0;
  bool closed_ = false;
};

// -- messages to the cluster actor (local only) --------------------------------

struct frame_join {
  caf::node_id from;
  join_request request;
};
struct frame_join_reply {
  caf::node_id from;
  join_reply reply;
};
struct frame_gossip {
  caf::node_id from;
  gossip_state state;
  /// An answer to gossip (never answered itself).
  bool reply = false;
};
struct peer_up {
  caf::node_id node;
};
struct peer_down {
  caf::node_id node;
};
struct dial_done {
  std::string address;
  caf::node_id node; // null on failure
  caf::error error;
};

using join_atom = caf::atom_constant<caf::atom("cjoin")>;
using wait_up_atom = caf::atom_constant<caf::atom("cwaitup")>;
using leave_atom = caf::atom_constant<caf::atom("cleave")>;
using members_atom = caf::atom_constant<caf::atom("cmembers")>;
using monitor_atom = caf::atom_constant<caf::atom("cmonitor")>;
using demonitor_atom = caf::atom_constant<caf::atom("cdemon")>;
using tick_atom = caf::atom_constant<caf::atom("ctick")>;
/// Why this node is not up yet (empty if nothing went wrong).
using why_atom = caf::atom_constant<caf::atom("cwhy")>;

/// The cluster actor. `n` outlives it (the module stops it before the node
/// goes). With `etcd` (the etcd backend), membership comes from etcd's keys
/// instead of gossip; detection, dialing and observers are the same.
caf::behavior cluster_actor(caf::event_based_actor* self, node* n,
                            settings cfg, member_info self_info,
                            std::shared_ptr<detector_table> detectors,
                            std::shared_ptr<helper_gate> gate,
                            std::shared_ptr<etcd_session> etcd);

} // namespace relay::cluster_detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::frame_join)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::frame_join_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::frame_gossip)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::peer_up)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::peer_down)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::dial_done)
