#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/proxy_registry.hpp>

#include "export_table.hpp"
#include "introspection.hpp"
#include "message_trace.hpp"
#include "lookup_client.hpp"
#include "name_registry.hpp"
#include "node_event_hub.hpp"
#include "rate_limited_log.hpp"
#include "relay/frame_handler.hpp"
#include "relay/node.hpp"
#include "relay/node_config.hpp"
#include "relay/transport.hpp"

namespace relay {

class metrics_endpoint;

namespace wire {
struct resume_info;
} // namespace wire

class peer;
class route;

/// The state behind relay::node. Internal; see node.hpp for the contract.
/// Its members are defined by concern: node_impl.cpp (set-up, teardown,
/// listening, proxies), peer_table.cpp (connections, routes, node events),
/// lookup_client.cpp (blocking lookups).
///
/// Locking: peers_mtx_ is a leaf except that events_.order_mutex() may be
/// held around it; no callback into CAF or a peer runs under it. The proxy
/// registry's own lock may call make_proxy, which takes peers_mtx_ (so never
/// call the proxy registry under peers_mtx_).
class node_impl : public caf::proxy_registry::backend {
public:
  explicit node_impl(node_config& cfg);
  ~node_impl() override;

  /// Starts the configured modules in order (node's constructor); on a
  /// throw, stops those started and rethrows. Freezes the frame table.
  void start_modules(node& owner);

  /// Stops the modules in reverse order (node's destructor).
  void stop_modules(node& owner);

  // -- used by relay::node ------------------------------------------------------

  caf::expected<std::string> listen(const std::string& uri, trust_level trust);
  caf::expected<caf::strong_actor_ptr>
  lookup(const std::string& uri, const std::string& name,
         const std::vector<std::string>& interface);
  /// A lookup on connected node `node` (node_unreachable if none).
  caf::expected<caf::strong_actor_ptr>
  lookup(const caf::node_id& node, const std::string& name,
         const std::vector<std::string>& interface);
  caf::expected<std::shared_ptr<peer>> connect(const std::string& uri);
  node_stats stats() const;
  bool disconnect(const caf::node_id& peer_id, caf::error reason);
  std::vector<peer_info> peers() const;
  void monitor_node(const caf::actor& observer, const caf::node_id& node);
  caf::error add_frame_handler(uint8_t kind, std::string name,
                               frame_handler handler);
  caf::error send_frame(const caf::node_id& id, frame_buffer frame);

  // -- used by peers and protocols ------------------------------------------------

  caf::actor_system& system() noexcept {
    return system_;
  }

  node_config& config() noexcept {
    return cfg_;
  }

  const message_registry& messages() const noexcept {
    return cfg_.messages();
  }

  caf::proxy_registry& proxies() noexcept {
    return proxies_;
  }

  const std::string& name() const noexcept {
    return name_;
  }

  const caf::actor& lookup_actor() const noexcept {
    return lookup_actor_;
  }

  const frame_table& frames() const noexcept {
    return frames_;
  }

  name_registry& names() noexcept {
    return *names_;
  }

  node_event_hub& events() noexcept {
    return events_;
  }

  lookup_client& lookups() noexcept {
    return lookups_;
  }

  /// Rate-limited warnings about dropped messages (a peer must not be able
  /// to flood the log).
  rate_limited_log& drop_log() noexcept {
    return drop_log_;
  }

  /// A peer completed its handshake. Returns the peer that serves that node
  /// from now on (`p`, or an existing connection that wins the tie-break), or
  /// an error if `p` must be closed (e.g. it connects us to ourselves).
  caf::expected<std::shared_ptr<peer>> on_handshake(std::shared_ptr<peer> p);

  /// A peer's connection ended. `may_resume`: the peer judged it a break
  /// that its session may survive (peer::may_resume_after); if the peer
  /// served its node, the node then suspends the route instead of losing
  /// the node (resume_node.cpp).
  void on_peer_closed(peer& p, const caf::error& reason, bool may_resume);

  // -- resuming sessions (resume_node.cpp) -------------------------------------

  /// Whether a connection (dialed `uri` over `scheme` if `initiator`) may
  /// carry a session: relay.resume is on and, for the side that dials, the
  /// transport can redial.
  bool can_resume(bool initiator, const std::string& uri,
                  const std::string& scheme) const;

  /// Acceptor: `fresh` resumes the session of the connection `info` names.
  /// Continues the session on it and makes it serve the node, or returns
  /// why not (errc::session_lost: the node gives up the session too;
  /// errc::resume_pending: the broken connection is not closed here yet).
  caf::error resume_session(const std::shared_ptr<peer>& fresh,
                            const wire::resume_info& info);

  /// Initiator: the remote's resume frame arrived on `fresh` (it
  /// dispatched `remote_dispatched` of our frames). Continues the session
  /// on `fresh`, which serves the node from now on, or returns why not
  /// (the session is given up then).
  caf::error complete_resume(const std::shared_ptr<peer>& fresh,
                             uint64_t remote_dispatched);

  /// Ends the suspended session of `broken` with `reason` and loses its
  /// node (DOWN, failed requests, node_down), unless it resumed meanwhile.
  void give_up(peer& broken, const caf::error& reason);

  /// How one redial attempt ended (resume_node.cpp).
  enum class redial_result { resumed, retry, final };

  /// Dials `broken`'s URI again and resumes its session. Blocks up to the
  /// connect and handshake bounds. `why` receives the failure.
  redial_result redial(const std::shared_ptr<peer>& broken, caf::error& why);

  /// The lock of the peer table; a route changes its current peer only
  /// under it (retire.cpp hands a route over).
  std::mutex& peers_mutex() noexcept {
    return peers_mtx_;
  }

  /// Waits up to `timeout` until exactly `n` connections are open
  /// (handshaking, serving or retiring); returns whether that happened. For
  /// tests and tools.
  bool wait_for_open_connections(size_t n, std::chrono::milliseconds timeout);

  /// The peers that currently serve a node (one per connected node).
  std::vector<std::shared_ptr<peer>> established_peers() const;

  /// Runs `task` soon on an actor of the node. For work that must not run
  /// where it is requested, e.g. inside an actor's critical section.
  void defer(std::function<void()> task);

  /// Makes local actor `x` reachable by id for peers, because a reference
  /// to it goes on the wire. It stays exported until it terminates or the
  /// node shuts down. Safe inside `x`'s critical section (e.g. while CAF
  /// links it): the cleanup attached to `x` is deferred.
  void export_actor(const caf::actor_control_block* x);

  /// The exported local actor `aid`, or null. Peers reach local actors only
  /// through this: an id never sent out cannot be addressed.
  caf::strong_actor_ptr find_exported(caf::actor_id aid) const {
    return exports_->find(aid);
  }

  /// As find_exported(aid); sets `traffic` to its counters if the actor
  /// is published (track_published), else to null.
  caf::strong_actor_ptr
  find_exported(caf::actor_id aid,
                std::shared_ptr<actor_traffic>& traffic) const {
    return exports_->find(aid, traffic);
  }

  /// Counts what peers send to the published actor `x` (its counters go
  /// when it terminates). Not inside x's critical section.
  void track_published(caf::strong_actor_ptr x) {
    exports_->track(x->id());
    exports_->watch(std::move(x));
  }

  /// The counters of a published actor, or null.
  std::shared_ptr<actor_traffic> traffic_of(caf::actor_id aid) const {
    return exports_->traffic_of(aid);
  }

  /// Why exported actor `aid` terminated, if it did recently; else
  /// exit_reason::unknown. For a monitor request that arrives after the exit.
  caf::error exit_reason_of(caf::actor_id aid) const {
    return exports_->exit_reason_of(aid);
  }

  /// Counters, bumped by peers.
  std::atomic<uint64_t> dropped_messages{0};
  std::atomic<uint64_t> unknown_type_ids{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> rejected_peers{0};
  std::atomic<uint64_t> overload_drops{0};
  std::atomic<uint64_t> overload_rejections{0};
  std::atomic<uint64_t> inbound_pauses{0};
  std::atomic<uint64_t> untrusted_drops{0};
  std::atomic<uint64_t> resumed_sessions{0};
  std::atomic<uint64_t> lost_sessions{0};

  // -- proxy_registry::backend ---------------------------------------------------

  caf::strong_actor_ptr make_proxy(caf::node_id nid, caf::actor_id aid) override;
  void set_last_hop(caf::node_id* ptr) override;

  /// The spawner of remote_spawn.cpp, published as remote_spawner_name.
  const caf::actor& spawner() const noexcept {
    return spawner_;
  }

  /// The introspection service, published as introspection_name.
  const caf::actor& introspector() const noexcept {
    return introspector_;
  }

  /// The actor behind node::spawn_actor().
  const caf::actor& spawn_client() const noexcept {
    return spawn_client_;
  }

  /// Starts and stops the introspection service (introspection.cpp).
  void start_introspection();
  void stop_introspection();

  /// The sources of introspection topics (node::add_introspection_source).
  introspection_sources& introspection() noexcept {
    return introspection_;
  }

  /// The messages entering and leaving the node while someone watches
  /// (relayctl monitor).
  message_trace& trace() noexcept {
    return trace_;
  }

  /// The URIs this node listens on.
  std::vector<std::string> listening() const;

  /// Starts the metrics endpoint if relay.metrics.listen is set (throws
  /// config_error if it cannot), and stops it (introspection.cpp).
  void start_metrics();
  void stop_metrics();

  /// "HOST:PORT" of the metrics endpoint, or "" (node::metrics_address).
  std::string metrics_address() const;

  /// Starts and stops the spawner and spawn_client (remote_spawn.cpp).
  void start_remote_spawn();
  void stop_remote_spawn();

  /// Asks `spawner` (a remote node's) to spawn `type` from `args`; answers
  /// the current request of `self` with the actor or a clear error.
  caf::result<caf::actor> spawn_via(caf::event_based_actor* self,
                                    const caf::strong_actor_ptr& spawner,
                                    const std::string& type,
                                    const std::vector<std::string>& ifs,
                                    caf::message args);

  /// Starts a peer on `conn` and arms its handshake timer. `uri` is the
  /// address dialed (empty for accepted connections); `resumes` the broken
  /// connection whose session it resumes, if any. Public for the fuzz
  /// targets, which drive a real peer through a fake connection.
  std::shared_ptr<peer> start_peer(connection_ptr conn, bool initiator,
                                   std::string uri, std::string scheme,
                                   trust_level trust = trust_level::trusted,
                                   std::shared_ptr<peer> resumes = nullptr);

private:
  /// A lookup over the connection `connect` returns; `uri` names the node
  /// in errors.
  caf::expected<caf::strong_actor_ptr> lookup_via(
    const std::function<caf::expected<std::shared_ptr<peer>>()>& connect,
    const std::string& uri, const std::string& name,
    const std::vector<std::string>& interface);

  /// The transport for `ep`'s scheme. Errors: unknown_scheme, listing the
  /// known ones.
  caf::expected<transport*> find_transport(const endpoint& ep);

  /// Waits for `p`'s handshake; returns the peer to use.
  caf::expected<std::shared_ptr<peer>> await_handshake(std::shared_ptr<peer> p);

  /// Closes peer `serial` if it still has not completed its handshake.
  void check_handshake(uint64_t serial);

  /// Closes every connection, flushing what is queued (bounded), and waits
  /// for them to end.
  void close_all_peers();

  /// Starts waiting for a resume of `broken`'s session (route `r`), which
  /// broke with `reason`: redials if this side dialed; gives up at the
  /// deadline.
  void begin_resume(std::shared_ptr<peer> broken, const caf::error& reason);

  /// Loses the node of route `r`, whose last peer `p` ended with `reason`:
  /// proxies report DOWN, requests fail, node_down goes out. Call with the
  /// event order lock held and `r` already out of routes_.
  void lose_route(route& r, peer& p, const caf::error& reason);

  /// Gives up every suspended session and stops the resume actors
  /// (shutdown).
  void stop_resuming();

  /// Continues `broken`'s session on `fresh` (peer::adopt_session) and
  /// makes `fresh` serve route `r`; logs how long the session was broken.
  /// Call under the event order lock.
  caf::error continue_session(route& r, const std::shared_ptr<peer>& fresh,
                              const std::shared_ptr<peer>& broken,
                              uint64_t remote_dispatched);

  node_config& cfg_;
  // Declared before system_ so that it outlives the actor system: proxies
  // and peers log drops from CAF's threads until system_ has joined them.
  rate_limited_log drop_log_;
  caf::actor_system system_;
  std::string name_;
  caf::proxy_registry proxies_;
  transport_registry transports_;
  frame_table frames_;
  bool frames_frozen_ = false;
  std::vector<std::shared_ptr<node_module>> started_modules_;
  caf::actor service_actor_;
  caf::actor heartbeat_actor_;
  caf::actor lookup_actor_;
  caf::actor spawner_;
  caf::actor spawn_client_;
  // One per suspended session (resume_node.cpp); guarded by peers_mtx_.
  std::vector<caf::actor> resumers_;

  caf::actor introspector_;
  introspection_sources introspection_;
  // Set by start_metrics and reset by stop_metrics, on the thread that
  // constructs and destroys the node; the service reads the address
  // meanwhile, on its own thread: hence a copy under a lock.
  std::unique_ptr<metrics_endpoint> metrics_;
  mutable std::mutex metrics_mtx_;
  std::string metrics_address_; // guarded by metrics_mtx_
  message_trace trace_;

  mutable std::mutex acceptors_mtx_;
  std::vector<std::unique_ptr<acceptor>> acceptors_;

  std::shared_ptr<export_table> exports_ = std::make_shared<export_table>();
  std::shared_ptr<name_registry> names_
    = std::make_shared<name_registry>(system_.node());
  node_event_hub events_;
  lookup_client lookups_;

  mutable std::mutex peers_mtx_;
  std::condition_variable peers_cv_;
  // Every peer with an open connection, by serial.
  std::unordered_map<uint64_t, std::shared_ptr<peer>> live_;
  // Peers gone from live_ whose on_peer_closed still runs (node_down to
  // listeners); close_all_peers waits for them too.
  size_t closing_ = 0;
  // The route to each connected node.
  std::unordered_map<caf::node_id, std::shared_ptr<route>> routes_;
  // Established peers by the URI we connected them with.
  std::unordered_map<std::string, caf::node_id> by_uri_;
  // Nodes whose dead-on-arrival proxies wait for release (make_proxy).
  std::unordered_set<caf::node_id> sweeps_;
  uint64_t next_serial_ = 1;
  bool stopping_ = false;
};

} // namespace relay
