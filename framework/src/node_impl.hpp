#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/proxy_registry.hpp>

#include "relay/node.hpp"
#include "relay/node_config.hpp"
#include "relay/transport.hpp"

namespace relay {

class peer;
class route;

/// What a lookup reply carries.
struct lookup_result {
  caf::actor_id aid = 0;
  std::vector<std::string> interface;
};

/// The state behind relay::node. Internal; see node.hpp for the contract.
///
/// Locking: peers_mtx_, names_mtx_ and lookups_mtx_ are leaves: no other
/// lock is taken while holding one, and no callback into CAF or a peer runs
/// under them. The proxy registry's own lock may call make_proxy, which
/// takes peers_mtx_ (so never call the proxy registry under peers_mtx_).
class node_impl : public caf::proxy_registry::backend {
public:
  explicit node_impl(node_config& cfg);
  ~node_impl() override;

  // -- used by relay::node ------------------------------------------------------

  caf::expected<std::string> listen(const std::string& uri);
  caf::error publish(caf::strong_actor_ptr handle, std::string name,
                     std::vector<std::string> interface);
  bool unpublish(const std::string& name);
  caf::expected<caf::strong_actor_ptr>
  lookup(const std::string& uri, const std::string& name,
         const std::vector<std::string>& interface);
  caf::expected<std::shared_ptr<peer>> connect(const std::string& uri);
  node_stats stats() const;
  bool disconnect(const caf::node_id& peer_id);

  // -- used by peers -------------------------------------------------------------

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

  /// A peer completed its handshake. Returns the peer that serves that node
  /// from now on (`p`, or an existing connection that wins the tie-break), or
  /// an error if `p` must be closed (e.g. it connects us to ourselves).
  caf::expected<std::shared_ptr<peer>> on_handshake(std::shared_ptr<peer> p);

  /// A peer's connection ended.
  void on_peer_closed(peer& p, const caf::error& reason);

  /// Returns the published actor `name` and its interface.
  std::optional<std::pair<caf::strong_actor_ptr, std::vector<std::string>>>
  find_published(const std::string& name) const;

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
  caf::strong_actor_ptr find_exported(caf::actor_id aid) const;

  /// Why exported actor `aid` terminated, if it did recently (the last
  /// export_table::max_exited exits are kept); else exit_reason::unknown.
  /// For a monitor request that arrives after the exit.
  caf::error exit_reason_of(caf::actor_id aid) const;

  /// Delivers the reply to lookup request `request_id`.
  void complete_lookup(uint64_t request_id,
                       caf::expected<lookup_result> result);

  /// Counters, bumped by peers.
  std::atomic<uint64_t> dropped_messages{0};
  std::atomic<uint64_t> unknown_type_ids{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> rejected_peers{0};

  // -- proxy_registry::backend ---------------------------------------------------

  caf::strong_actor_ptr make_proxy(caf::node_id nid, caf::actor_id aid) override;
  void set_last_hop(caf::node_id* ptr) override;

private:
  struct published_actor {
    caf::strong_actor_ptr handle;
    std::vector<std::string> interface;
  };

  struct pending_lookup {
    std::optional<caf::expected<lookup_result>> result;
  };

  /// The transport for `ep`'s scheme. Errors: unknown_scheme, listing the
  /// known ones.
  caf::expected<transport*> find_transport(const endpoint& ep);

  /// Starts a peer on `conn` and arms its handshake timer.
  std::shared_ptr<peer> start_peer(connection_ptr conn, bool initiator);

  /// Waits for `p`'s handshake; returns the peer to use.
  caf::expected<std::shared_ptr<peer>> await_handshake(std::shared_ptr<peer> p);

  /// Closes peer `serial` if it still has not completed its handshake.
  void check_handshake(uint64_t serial);

  node_config& cfg_;
  caf::actor_system system_;
  std::string name_;
  caf::proxy_registry proxies_;
  transport_registry transports_;
  caf::actor service_actor_;
  caf::actor lookup_actor_;

  std::mutex acceptors_mtx_;
  std::vector<std::unique_ptr<acceptor>> acceptors_;

  /// Shared with the cleanup functors attached to exported actors, which
  /// may outlive the node.
  struct export_table {
    static constexpr size_t max_exited = 4096;
    mutable std::shared_mutex mtx;
    std::unordered_map<caf::actor_id, caf::strong_actor_ptr> actors;
    std::unordered_map<caf::actor_id, caf::error> exited;
    std::deque<caf::actor_id> exit_order; // oldest first
  };
  std::shared_ptr<export_table> exports_ = std::make_shared<export_table>();

  mutable std::mutex names_mtx_;
  std::map<std::string, published_actor> names_;

  mutable std::mutex peers_mtx_;
  std::condition_variable peers_cv_;
  // Every peer with an open connection, by serial.
  std::unordered_map<uint64_t, std::shared_ptr<peer>> live_;
  // The route to each connected node.
  std::unordered_map<caf::node_id, std::shared_ptr<route>> routes_;
  // Established peers by the URI we connected them with.
  std::unordered_map<std::string, caf::node_id> by_uri_;
  uint64_t next_serial_ = 1;
  bool stopping_ = false;

  std::mutex lookups_mtx_;
  std::condition_variable lookups_cv_;
  std::unordered_map<uint64_t, pending_lookup> lookups_;
  uint64_t next_lookup_ = 1;
};

} // namespace relay
