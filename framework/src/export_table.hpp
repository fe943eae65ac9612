#pragma once

#include <cstddef>
#include <deque>
#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>

namespace relay {

/// What arrived from peers for one tracked (published) local actor.
/// Thread rules: atomics, updated by I/O threads and by whichever thread
/// destroys a mailbox element.
struct actor_traffic {
  /// Messages from peers handed to the actor.
  std::atomic<uint64_t> messages_in{0};
  /// Of those, the ones still in its mailbox (not yet processed).
  std::atomic<int64_t> queued{0};
};

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

  /// As find(aid); also sets `traffic` to the actor's counters if it is
  /// tracked (else to null). For the message path.
  caf::strong_actor_ptr find(caf::actor_id aid,
                             std::shared_ptr<actor_traffic>& traffic) const;

  /// Counts what peers send to `aid` from now on (a published actor, for
  /// the metrics), exported yet or not; returns its counters. Kept until
  /// the actor terminates.
  std::shared_ptr<actor_traffic> track(caf::actor_id aid);

  /// The counters of `aid` if it is tracked, else null.
  std::shared_ptr<actor_traffic> traffic_of(caf::actor_id aid) const;

  /// Why exported actor `aid` terminated, if it did recently; else
  /// exit_reason::unknown.
  caf::error exit_reason_of(caf::actor_id aid) const;

  /// Drops every entry (node shutdown). References are released outside the
  /// lock, since a last reference runs the actor's cleanup.
  void clear();

private:
  void on_exit(caf::actor_id aid, const caf::error& reason);

  struct entry {
    caf::strong_actor_ptr ptr;
    std::shared_ptr<actor_traffic> traffic; // null unless tracked
  };

  // Tells tables apart in insert()'s per-thread memory of the last actor
  // it exported (an address could be reused by a later table).
  const uint64_t serial_ = next_serial_.fetch_add(1) + 1;
  static std::atomic<uint64_t> next_serial_;

  mutable std::shared_mutex mtx_;
  std::unordered_map<caf::actor_id, entry> actors_;
  // Tracked actors, exported or not (an actor is published before a peer
  // learns of it); entries copy the pointer when exported.
  std::unordered_map<caf::actor_id, std::shared_ptr<actor_traffic>> tracked_;
  std::unordered_map<caf::actor_id, caf::error> exited_;
  std::deque<caf::actor_id> exit_order_; // oldest first
};

} // namespace relay
