#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/node_id.hpp>
#include <caf/weak_intrusive_ptr.hpp>

namespace relay {

class peer;

/// The way to one remote node: the connection currently serving it, shared
/// by all proxies of that node, and the requests waiting for its responses.
/// Outlives any single connection when two nodes briefly hold two
/// connections to each other (see node_impl::on_handshake).
///
/// Thread rules: all member functions are thread-safe.
class route {
public:
  explicit route(caf::node_id remote) : remote_(std::move(remote)) {
    // nop
  }

  const caf::node_id& remote() const noexcept {
    return remote_;
  }

  /// The peer serving the node, or null once the node is unreachable.
  std::shared_ptr<peer> current() const {
    return std::atomic_load(&current_);
  }

  void set(std::shared_ptr<peer> p) {
    std::atomic_store(&current_, std::move(p));
  }

  /// Remembers that local actor `sender` waits for response `response_id`.
  void add_pending(caf::actor_id sender, uint64_t response_id,
                   caf::weak_actor_ptr who);

  /// Forgets a request once its response arrived.
  void erase_pending(caf::actor_id sender, uint64_t response_id);

  /// Fails every waiting request with `reason`.
  void fail_pending(const caf::error& reason);

  /// Remembers that the remote node monitors local actor `aid`. Returns
  /// false if it did already. The monitor belongs to the route, not to one
  /// connection: a connection retired for a duplicate passes it on.
  bool add_monitored(caf::actor_id aid);

  /// Forgets and returns every monitored actor (the node is lost).
  std::vector<caf::actor_id> take_monitored();

private:
  using pending_key = std::pair<caf::actor_id, uint64_t>;

  struct pending_key_hash {
    size_t operator()(const pending_key& x) const noexcept {
      return std::hash<uint64_t>{}(x.first * 0x9e3779b97f4a7c15ull ^ x.second);
    }
  };

  caf::node_id remote_;
  std::shared_ptr<peer> current_;
  std::mutex mtx_;
  std::unordered_map<pending_key, caf::weak_actor_ptr, pending_key_hash>
    pending_;
  std::unordered_set<caf::actor_id> monitored_;
};

} // namespace relay
