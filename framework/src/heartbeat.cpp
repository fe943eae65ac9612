#include "heartbeat.hpp"

#include <unordered_set>

#include "protocols.hpp"
#include "relay/frame_handler.hpp"

namespace relay {

caf::behavior heartbeat_actor(caf::stateful_actor<heartbeat_state>* self,
                              caf::timespan interval, caf::timespan timeout,
                              heartbeat_source source) {
  auto ticks = static_cast<uint32_t>((timeout.count() + interval.count() - 1)
                                     / interval.count());
  if (ticks == 0)
    ticks = 1;
  self->delayed_send(self, interval, heartbeat_tick{});
  return {
    [=](heartbeat_tick) {
      auto& known = self->state.connections;
      std::unordered_set<uint64_t> seen;
      for (auto& probe : source()) {
        seen.insert(probe.key);
        auto [i, added] = known.emplace(probe.key, heartbeat_state::entry{});
        auto& e = i->second;
        if (added) {
          e.received = probe.received;
          e.sent = probe.sent;
          continue;
        }
        if (probe.received != e.received || probe.paused) {
          e.received = probe.received;
          e.silent_ticks = 0;
        } else if (++e.silent_ticks >= ticks) {
          probe.close_silent();
          continue;
        }
        bool idle = probe.sent == e.sent;
        e.sent = probe.sent;
        if (idle) {
          probe.send_heartbeat();
          ++e.sent; // the heartbeat itself: idle means one per tick
        }
      }
      for (auto i = known.begin(); i != known.end();)
        i = seen.count(i->first) == 0 ? known.erase(i) : std::next(i);
      self->delayed_send(self, interval, heartbeat_tick{});
    },
  };
}

caf::error add_heartbeat_protocol(frame_table& table) {
  // Receiving it is all a heartbeat does: the peer counts every frame.
  return table.add(static_cast<uint8_t>(frame_kind::heartbeat), "heartbeat",
                   [](peer_context&, wire_reader& in) {
                     if (in.remaining() != 0)
                       throw wire_error("heartbeat with a body");
                   });
}

} // namespace relay
