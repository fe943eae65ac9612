#pragma once

// The etcd backend's session of one node: its lease (granted when it
// joins, kept alive every ttl/3, revoked when it leaves or is removed), the
// keys it writes, and a watch of the cluster's keys whose changes reach the
// cluster actor as etcd_update messages, in etcd's revision order (so every
// member applies them in the same order).
//
// Keys, under <prefix><cluster>/ (values are JSON, checked before use):
//   membership/members/<node id>  {"name": s, "address": s,
//                                  "status": "up"|"left"}
//   membership/rows/<node id>     {"version": n, "unreachable": [ids]}
//   names/<name>                  {"node": <node id>, "actor": n}
// all attached to the writer's lease, so a node's keys go with it: a
// member key that disappears means its node is down (or left, if its last
// status said so). Node ids are caf::to_string(node_id). Only
// membership/ is read and watched; names are only written and compared.
//
// Thread rules: every method is thread-safe and returns at once; the work
// runs on three threads of the session: a worker that runs the requests in
// the order they were asked for, a keeper for the lease's keep-alive (so
// that no request delays it), and a watcher. Results go to actors as
// messages. stop() joins the threads; call it before the actor system
// goes.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>

#include "membership.hpp"

namespace relay::cluster_detail {

class etcd_client;

struct etcd_settings {
  /// "http://host:port" URLs of etcd's client endpoints (tried in order).
  std::vector<std::string> endpoints;
  /// Keys live under <prefix><cluster>/.
  std::string prefix = "/relay/";
  /// The lease's time to live: a node silent towards etcd this long is
  /// down (etcd rounds it up to its minimum, about 2 s with defaults). It
  /// is also the longest etcd outage the members survive.
  std::chrono::seconds lease_ttl{10};
  /// Bound on each request to etcd (at most lease_ttl / 3, so that a
  /// keep-alive that times out is retried before the lease expires).
  std::chrono::milliseconds timeout{2000};
};

// -- messages to the cluster actor and the registry (local only) -------------

/// The lease was granted (error: why not; the caller retries).
struct etcd_opened {
  caf::error error;
};

/// One change of the cluster's keys.
struct etcd_change {
  enum class type { member, member_gone, row } kind = type::member;
  member_info member;  // member: put, status up or left
  observation_row row; // row
  caf::node_id node;   // member_gone: its key was deleted
};

/// Changes of the cluster's keys, in etcd's order. `full`: a fresh read of
/// every key (the first one, and after a broken watch): members not in
/// `present` are gone.
struct etcd_update {
  bool full = false;
  std::vector<etcd_change> changes;
  /// (full) every member key's node id, also of keys whose value was
  /// rejected (logged): a value this node cannot read does not make a
  /// member gone.
  std::vector<caf::node_id> present;
};

/// A write of this node's observation row ended (error: it was not
/// written; the caller writes again).
struct etcd_row_written {
  uint64_t version = 0;
  caf::error error;
};

/// The deletion of a member's key (down_member) ended.
struct etcd_downed {
  caf::node_id node;
  caf::error error;
};

/// This node's member key was written (error: why not; retried by the
/// caller).
struct etcd_announced {
  caf::error error;
};

/// The lease is lost (expired, revoked elsewhere, or etcd unreachable for
/// longer than its ttl): this node is no member any more.
struct etcd_lost {
  caf::error reason;
};

/// The answer to claim_name: none, already_registered (naming the holder)
/// or etcd's error.
struct etcd_claimed {
  uint64_t request = 0;
  caf::error error;
};

class etcd_session {
public:
  etcd_session(etcd_settings cfg, std::string cluster, member_info self);
  ~etcd_session();

  etcd_session(const etcd_session&) = delete;
  etcd_session& operator=(const etcd_session&) = delete;

  const etcd_settings& config() const noexcept {
    return cfg_;
  }

  /// Grants the lease, then starts the keep-alive and the watch. `sink`
  /// receives etcd_opened, then etcd_update (the first one full) and, if
  /// it happens, etcd_lost. A failed open may be retried.
  void open(caf::actor sink);

  /// Writes this node's member key with `status` (up or left). Before the
  /// first one, deletes the member keys of other incarnations at this
  /// node's address (a restarted node: the old one is dead). The sink
  /// receives etcd_announced.
  void announce(member_status status);

  /// Writes this node's observation row; the sink receives
  /// etcd_row_written.
  void put_row(const observation_row& row);

  /// Deletes the member key of `node` (the leader downs it); the sink
  /// receives etcd_downed.
  void down_member(const caf::node_id& node);

  /// Revokes the lease: every key of this node goes at once.
  void revoke();

  /// Puts names/<name> = holder under the lease if absent (a transaction,
  /// so two nodes can never both hold a name). `reply_to` receives
  /// etcd_claimed{request, ...}.
  void claim_name(const std::string& name, const caf::actor& holder,
                  caf::actor reply_to, uint64_t request);

  /// Deletes names/<name> if `holder` still holds it.
  void release_name(const std::string& name, const caf::actor& holder);

  /// Ends the threads: requests asked for before still run, for at most
  /// two timeouts in all, then the threads are joined. Does not revoke.
  void stop();

  /// The key prefix of this cluster, "<prefix><cluster>/".
  const std::string& base() const noexcept {
    return base_;
  }

private:
  using job = std::function<void(etcd_client&)>;

  void post(job j);
  void worker_loop();
  void keeper_loop();
  void watcher_loop();
  void send(caf::message msg);
  int64_t lease() {
    std::lock_guard<std::mutex> guard{mtx_};
    return lease_;
  }

  etcd_settings cfg_;
  member_info self_;
  std::string base_;

  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<job> jobs_;
  bool stopping_ = false;
  int64_t lease_ = 0; // 0: none
  std::chrono::steady_clock::time_point renewed_; // last keep-alive answered
  bool announced_ = false;
  bool opening_ = false; // an open() is queued or running
  std::chrono::steady_clock::time_point drain_deadline_; // after stop()
  caf::actor sink_;
  std::shared_ptr<etcd_client> watch_client_; // for stop()
  std::thread worker_;
  std::thread keeper_;
  std::thread watcher_;
};

} // namespace relay::cluster_detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::etcd_opened)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::etcd_update)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::etcd_announced)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::etcd_lost)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::etcd_claimed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::etcd_row_written)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::etcd_downed)
