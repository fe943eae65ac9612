#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/timestamp.hpp>

namespace relay {

/// One message that entered or left the node, as relayctl monitor shows it.
struct trace_record {
  /// Position in the node's trace (1, 2, ...); gaps are records lost.
  uint64_t seq = 0;
  caf::timestamp time;
  /// True for a message from a peer, false for one to a peer.
  bool inbound = false;
  /// The connection's peer (peer::display_name).
  std::string peer;
  /// Actor ids: the sender on its node (0: anonymous), the receiver on its.
  caf::actor_id sender = 0;
  caf::actor_id receiver = 0;
  /// Registered names of the elements, comma-separated ("ping_pong.ping").
  std::string type;
  /// Frame size on the wire, header included.
  uint64_t bytes = 0;
};

/// The trace behind relayctl monitor: records messages entering and leaving
/// the node while someone watches, into a bounded ring.
///
/// Cost: with nobody watching, active() is one relaxed atomic load per
/// message and nothing is recorded. A watcher activates it for a lease
/// (watch()), which each poll renews; once the lease passes, the next
/// message turns it off. While active, a record takes a lock and a few
/// small strings; the ring holds the last `capacity` records and a watcher
/// that falls behind is told how many it lost.
///
/// Thread rules: thread-safe.
class message_trace {
public:
  /// Records kept; older ones are overwritten.
  static constexpr size_t capacity = 4096;

  /// How long one watch() keeps the trace on, by default.
  static constexpr std::chrono::milliseconds default_lease{5000};

  explicit message_trace(std::chrono::milliseconds lease = default_lease)
    : lease_(lease) {
    // nop
  }

  /// Whether messages are to be recorded now.
  bool active() const noexcept {
    return active_.load(std::memory_order_relaxed);
  }

  /// Records `x` (its seq and, if unset, its time are filled in). Turns
  /// the trace off instead if the lease has passed.
  void record(trace_record x);

  /// Turns the trace on for the lease from now. Returns the seq of the
  /// newest record (a new watcher starts after it).
  uint64_t watch();

  /// The records after `seq`, oldest first, at most `max`; `lost` receives
  /// how many after `seq` were overwritten before this call.
  std::vector<trace_record> since(uint64_t seq, size_t max, uint64_t& lost);

private:
  const std::chrono::milliseconds lease_;
  std::atomic<bool> active_{false};
  std::mutex mtx_;
  std::deque<trace_record> ring_;
  uint64_t next_seq_ = 1;
  std::chrono::steady_clock::time_point lease_end_;
};

} // namespace relay
