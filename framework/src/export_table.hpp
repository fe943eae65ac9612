#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>

namespace relay {

/// The local actors that peers may address by id: exactly those whose
/// reference went out on the wire. An id never sent out cannot be reached.
/// Also remembers why the last max_exited of them terminated, to answer a
/// monitor request that arrives after the exit with the real reason.
///
/// Shared (std::shared_ptr) with the cleanup functors attached to exported
/// actors, which may outlive the node. Thread rules: thread-safe.
class export_table : public std::enable_shared_from_this<export_table> {
public:
  static constexpr size_t max_exited = 4096;

  /// Adds `x`. Returns true if it was not exported before; the caller must
  /// then call watch(x) outside x's critical section (e.g. deferred), so
  /// that the entry goes when x terminates.
  bool insert(const caf::actor_control_block* x);

  /// Attaches the cleanup that removes `x` when it terminates (at once if it
  /// already did). Takes x's lock: never call inside its critical section.
  void watch(caf::strong_actor_ptr x);

  /// The exported actor `aid`, or null.
  caf::strong_actor_ptr find(caf::actor_id aid) const;

  /// Why exported actor `aid` terminated, if it did recently; else
  /// exit_reason::unknown.
  caf::error exit_reason_of(caf::actor_id aid) const;

  /// Drops every entry (node shutdown). References are released outside the
  /// lock, since a last reference runs the actor's cleanup.
  void clear();

private:
  void on_exit(caf::actor_id aid, const caf::error& reason);

  mutable std::shared_mutex mtx_;
  std::unordered_map<caf::actor_id, caf::strong_actor_ptr> actors_;
  std::unordered_map<caf::actor_id, caf::error> exited_;
  std::deque<caf::actor_id> exit_order_; // oldest first
};

} // namespace relay
