#include "heartbeat.hpp"

#include <unordered_set>

#include "peer.hpp"
#include "protocols.hpp"
#include "relay/frame_handler.hpp"
#include "wire.hpp"

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
        // A probe per tick, where the remote answers them: it times a
        // round trip, and as a frame it keeps the connection from idling.
        if (probe.send_probe && probe.send_probe()) {
          ++e.sent;
        } else if (idle) {
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

namespace {

uint64_t steady_now_ns() {
  return static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch())
      .count());
}

/// A probe or probe_reply frame carrying `token`.
frame_buffer token_frame(frame_kind kind, uint64_t token) {
  auto buf = begin_frame(8);
  wire_writer out{buf};
  out(token);
  finish_frame(buf, kind);
  return buf;
}

uint64_t read_token(wire_reader& in, const char* what) {
  uint64_t token = 0;
  in(token);
  if (in.remaining() != 0)
    throw wire_error(std::string{what} + " with trailing bytes");
  return token;
}

} // namespace

bool peer::send_probe() {
  if (!remote_probes_ || current_state() != state::established)
    return false;
  // A token of 0 means "none outstanding": the clock never reads 0 here.
  auto token = steady_now_ns() | 1;
  // An unanswered probe is replaced: its answer, if it comes, is ignored.
  probe_token_.store(token);
  return !send_frame(token_frame(frame_kind::probe, token));
}

void peer::on_probe_reply(uint64_t token) {
  auto expected = token;
  if (token == 0 || !probe_token_.compare_exchange_strong(expected, 0))
    return; // late (a newer probe replaced it) or not ours
  rtt_.record(std::chrono::nanoseconds{
    static_cast<int64_t>(steady_now_ns() - token)});
}

caf::error add_heartbeat_protocol(frame_table& table) {
  // Receiving it is all a heartbeat does: the peer counts every frame.
  if (auto err = table.add(static_cast<uint8_t>(frame_kind::heartbeat),
                           "heartbeat", [](peer_context&, wire_reader& in) {
                             if (in.remaining() != 0)
                               throw wire_error("heartbeat with a body");
                           }))
    return err;
  // The token is opaque to the side that echoes it.
  if (auto err = table.add(static_cast<uint8_t>(frame_kind::probe), "probe",
                           [](peer_context& from, wire_reader& in) {
                             auto token = read_token(in, "probe");
                             from.send_frame(
                               token_frame(frame_kind::probe_reply, token));
                           }))
    return err;
  return table.add(static_cast<uint8_t>(frame_kind::probe_reply),
                   "probe_reply", [](peer_context& from, wire_reader& in) {
                     static_cast<peer&>(from).on_probe_reply(
                       read_token(in, "probe_reply"));
                   });
}

} // namespace relay
