// Duplicate connections: when two nodes connect to each other at the same
// moment, both sides keep the connection whose initiator has the smaller
// (node id, serial) and retire the other one (the loser) like this:
//
//   1. Each side sends a `retire` frame as its last frame on the loser.
//      Whatever its actors send through the loser afterwards goes to the
//      winner (connection::send_last), in order.
//   2. Until the remote's `retire` arrives on the loser, frames arriving on
//      the winner are held: the remote may have sent earlier frames on the
//      loser, and those must be delivered first.
//   3. A side that has both sent and received `retire` closes the loser.
//      Nothing was in flight on it any more, in either direction.
//
// So no frame is lost and frames between two actors keep their order,
// whatever the interleaving of the two handshakes.

#include "node_impl.hpp"
#include "peer.hpp"
#include "protocols.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"

namespace relay {

void peer::retire(const std::shared_ptr<peer>& winner) {
  if (retired_.exchange(true))
    return;
  duplicate_ = true;
  {
    // Under our lock, which on_remote_retire takes too: the winner holds
    // exactly if someone will release it. Lock order: ours, then winner's.
    std::lock_guard<std::mutex> guard{hold_mtx_};
    retired_at_ = std::chrono::steady_clock::now();
    if (winner && winner.get() != this && !remote_retired_.load()
        && state_.load() != state::closed) {
      winner->hold();
      release_on_retire_ = winner;
    }
  }
  // Frames sent through this connection from now on take the route's
  // current connection (the winner); never this one again.
  std::weak_ptr<route> weak_route = route_;
  std::weak_ptr<peer> self = weak_from_this();
  auto buf = begin_frame(0);
  finish_frame(buf, frame_kind::retire);
  auto err = conn_->send_last(std::move(buf), [weak_route, self](frame_buffer f) {
    auto r = weak_route.lock();
    auto next = r ? r->current() : nullptr;
    if (!next || next == self.lock())
      return make_error(errc::node_unreachable,
                        "no connection to the node serves it any more");
    return next->send_frame(std::move(f));
  });
  if (err) {
    close(err, false);
    return;
  }
  frames_out_.fetch_add(1, std::memory_order_relaxed);
  log(log_level::info, "retiring duplicate connection to " + display_name());
  close_if_retired();
}

void peer::on_remote_retire() {
  std::shared_ptr<peer> winner;
  {
    std::lock_guard<std::mutex> guard{hold_mtx_};
    if (remote_retired_.exchange(true))
      return;
    winner = release_on_retire_.lock();
    release_on_retire_.reset();
  }
  if (winner)
    winner->release();
  close_if_retired();
}

bool peer::retire_overdue(std::chrono::steady_clock::duration bound) const {
  if (!retired_.load() || remote_retired_.load())
    return false;
  std::lock_guard<std::mutex> guard{hold_mtx_};
  return std::chrono::steady_clock::now() - retired_at_ >= bound;
}

void peer::close_if_retired() {
  if (retired_.load() && remote_retired_.load())
    close(make_error(errc::connection_closed,
                     "duplicate connection retired by both sides"),
          true);
}

void peer::hold() {
  std::lock_guard<std::mutex> guard{hold_mtx_};
  holding_ = true;
}

void peer::release() {
  for (;;) {
    frame_buffer f;
    {
      std::lock_guard<std::mutex> guard{hold_mtx_};
      if (held_.empty()) {
        holding_ = false;
        return;
      }
      f = std::move(held_.front());
      held_.pop_front();
    }
    if (state_.load() == state::closed)
      continue;
    auto header = frame_header::read(f.data());
    dispatch(header, f.data() + frame_header::size);
  }
}

caf::error add_retire_protocol(frame_table& table) {
  return table.add(static_cast<uint8_t>(frame_kind::retire), "retire",
                   [](peer_context& p, wire_reader& in) {
                     if (in.remaining() != 0)
                       throw wire_error("retire with a body");
                     static_cast<peer&>(p).on_remote_retire();
                   });
}

} // namespace relay
