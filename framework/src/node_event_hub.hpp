#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/node_id.hpp>
#include <caf/weak_intrusive_ptr.hpp>

#include "relay/node_events.hpp"

namespace relay {

/// Delivers node events to observer actors and in-process listeners.
///
/// Ordering: the node holds order_mutex() while it decides that a node came
/// up or went down, while the proxies of a lost node report DOWN, and while
/// it calls node_up/node_down, so that events for one node reach everyone in
/// the order they happened. Lock order: order_mutex() before the node's
/// peer lock. The mutex is recursive: code that runs under it on the same
/// thread (a listener, a functor attached to a remote handle) may call
/// monitor_node and the like without deadlocking.
///
/// Thread rules: thread-safe.
class node_event_hub {
public:
  /// The lock that orders events (see above).
  std::recursive_mutex& order_mutex() noexcept {
    return order_mtx_;
  }

  /// `observer` receives node_up_msg and node_down_msg for every node.
  void monitor_nodes(const caf::actor& observer);

  /// Undoes monitor_nodes. Returns whether `observer` was registered.
  bool demonitor_nodes(const caf::actor& observer);

  /// `observer` receives one node_down_msg when `node` goes down. Requires
  /// order_mutex() and that `node` is connected (else send the message at
  /// once instead).
  void monitor_node_locked(const caf::actor& observer, const caf::node_id& node);

  void add_listener(std::shared_ptr<node_listener> x);
  bool remove_listener(const std::shared_ptr<node_listener>& x);

  /// Reports that `info.node` came up. Requires order_mutex(). A `hidden`
  /// connection (node_config::hidden) reaches no observer or listener.
  void node_up_locked(const peer_info& info, bool hidden);

  /// Reports that `node` went down. Requires order_mutex(). For a `hidden`
  /// connection, only the monitors of this one node hear of it.
  void node_down_locked(const caf::node_id& node, const caf::error& reason,
                        bool hidden);

private:
  std::recursive_mutex order_mtx_;
  std::mutex mtx_; // guards the members below; a leaf
  std::vector<caf::weak_actor_ptr> observers_;
  std::unordered_map<caf::node_id, std::vector<caf::weak_actor_ptr>> monitors_;
  std::vector<std::shared_ptr<node_listener>> listeners_;
};

} // namespace relay
