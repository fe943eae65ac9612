#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/timespan.hpp>

namespace relay {

/// One connection as the heartbeat sees it at a tick.
struct heartbeat_probe {
  /// Unique per connection (the peer's serial).
  uint64_t key = 0;
  /// Progress received (bytes read: a large frame counts while it arrives)
  /// and frames sent so far; only their changes matter.
  uint64_t received = 0;
  uint64_t sent = 0;
  /// Reading is paused on our side (back-pressure): silence is not counted.
  bool paused = false;
  /// Sends a heartbeat frame on the connection.
  std::function<void()> send_heartbeat;
  /// Sends a probe (a frame the remote answers, timing a round trip) and
  /// returns true, or returns false where the remote does not answer
  /// probes. Empty: never probe.
  std::function<bool()> send_probe;
  /// Closes the connection as silent (errc::heartbeat_timeout).
  std::function<void()> close_silent;
};

/// Lists the connections to watch, at each tick.
using heartbeat_source = std::function<std::vector<heartbeat_probe>()>;

/// What the heartbeat actor remembers of each connection between ticks.
struct heartbeat_state {
  struct entry {
    uint64_t received = 0;
    uint64_t sent = 0;
    /// Consecutive ticks without a frame received.
    uint32_t silent_ticks = 0;
  };
  std::unordered_map<uint64_t, entry> connections;
  static inline const char* name = "relay.heartbeat";
};

/// Tick message of the heartbeat actor. Internal.
struct heartbeat_tick {};

/// The heartbeat actor: every `interval` on CAF's clock (so a
/// test_coordinator drives it deterministically) it looks at each
/// connection from `source`:
/// - where send_probe works, it sends a probe every tick (a frame, and a
///   round-trip time); elsewhere, if nothing was sent since the last tick,
///   a heartbeat: a live connection never goes two intervals without a
///   frame;
/// - nothing received for n = ceil(timeout / interval) ticks in a row: it
///   closes the connection, which reports the node down. A connection is
///   thus closed after at least n and less than n + 1 intervals of silence.
/// Counting ticks instead of reading clocks keeps the message path free of
/// time stamps: it reads the counters the transport keeps anyway.
caf::behavior heartbeat_actor(caf::stateful_actor<heartbeat_state>* self,
                              caf::timespan interval, caf::timespan timeout,
                              heartbeat_source source);

} // namespace relay

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::heartbeat_tick)
