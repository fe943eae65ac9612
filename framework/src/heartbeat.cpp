#include "heartbeat.hpp"

#include <unordered_set>

#include "node_impl.hpp"
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
  // One probe at a time: a round trip longer than the interval is timed
  // when its answer comes; meanwhile the tick sends heartbeats. A peer
  // that never answers thus gets heartbeats only, as before probes.
  // The token is the clock plus a random offset per connection (the
  // clock alone would tell the peer the host's uptime), odd, so never 0,
  // which means "none outstanding".
  auto token = (steady_now_ns() + probe_offset_) | 1;
  uint64_t none = 0;
  if (!probe_token_.compare_exchange_strong(none, token))
    return false;
  if (send_frame(token_frame(frame_kind::probe, token))) {
    probe_token_.store(0);
    return false;
  }
  return true;
}

void peer::on_probe_reply(uint64_t token) {
  // Replies come one at a time on this connection's I/O thread, and only
  // here is the token cleared: recorded before the next probe can go out.
  if (token == 0 || probe_token_.load() != token)
    return; // not the answer to the probe outstanding: made up
  rtt_.record(std::chrono::nanoseconds{
    static_cast<int64_t>(steady_now_ns() + probe_offset_ - token)});
  probe_token_.store(0);
}

void peer::answer_probe(uint64_t token) {
  // System frames skip relay.max-queued-bytes; a peer that sends probes
  // and reads nothing must not grow our queue: no answer past the bound.
  if (queued_bytes() >= node_.config().max_queued_bytes)
    return;
  send_frame(token_frame(frame_kind::probe_reply, token));
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
                             static_cast<peer&>(from).answer_probe(
                               read_token(in, "probe"));
                           }))
    return err;
  return table.add(static_cast<uint8_t>(frame_kind::probe_reply),
                   "probe_reply", [](peer_context& from, wire_reader& in) {
                     static_cast<peer&>(from).on_probe_reply(
                       read_token(in, "probe_reply"));
                   });
}

} // namespace relay
