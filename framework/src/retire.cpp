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

#include "inbound_budget.hpp"
#include "node_impl.hpp"
#include "peer.hpp"
#include "protocols.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "session.hpp"

namespace relay {

/// What is sent through a retiring connection that served its node, until
/// the remote's retire says it holds the winner (see hand_over).
struct peer::handover_queue {
  std::mutex mtx;
  std::deque<frame_buffer> frames; // guarded by mtx
  std::shared_ptr<peer> target;    // the winner
  bool open = true;                // guarded by mtx: still queueing
};

namespace {

// An ack counts the frames of the connection it is sent on: one that
// reaches a retired connection's successor must not go on.
bool is_ack(const frame_buffer& f) {
  return f.size() > 5 && static_cast<frame_kind>(f[5]) == frame_kind::ack;
}

} // namespace

void peer::retire(const std::shared_ptr<peer>& winner) {
  if (retired_.exchange(true))
    return;
  duplicate_ = true;
  // Its successor numbers what is sent from now on; a retired connection
  // never resumes.
  if (session_)
    session_->pass_through();
  // The remote's retire frame must be read for this connection to close:
  // no back-pressure pause may keep it unread.
  budget_->disable();
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
  auto buf = begin_frame(0);
  finish_frame(buf, frame_kind::retire);
  connection::successor next;
  if (route_ && route_->current().get() == this && winner
      && winner.get() != this) {
    // This connection served the node: it keeps doing so (the route points
    // here) while what is sent through it waits, so that nothing overtakes
    // what already went out on it. hand_over() sends it on to the winner.
    auto q = std::make_shared<handover_queue>();
    q->target = winner;
    handover_ = q;
    next = [q](frame_buffer f) -> caf::error {
      if (is_ack(f))
        return caf::none; // this connection's count, not the winner's
      std::unique_lock<std::mutex> guard{q->mtx};
      if (q->open) {
        q->frames.push_back(std::move(f));
        return caf::none;
      }
      guard.unlock();
      return q->target->send_frame(std::move(f));
    };
  } else {
    // The winner serves the node already: frames take it at once.
    std::weak_ptr<route> weak_route = route_;
    std::weak_ptr<peer> self = weak_from_this();
    next = [weak_route, self](frame_buffer f) {
      if (is_ack(f))
        return caf::error{}; // this connection's count, not the winner's
      auto r = weak_route.lock();
      auto p = r ? r->current() : nullptr;
      if (!p || p == self.lock())
        return make_error(errc::node_unreachable,
                          "no connection to the node serves it any more");
      return p->send_frame(std::move(f));
    };
  }
  auto err = conn_->send_last(std::move(buf), std::move(next));
  if (err) {
    close(err, false);
    return;
  }
  log(log_level::info, "retiring duplicate connection to " + display_name());
  if (remote_retired_.load())
    hand_over();
  close_if_retired();
}

void peer::hand_over() {
  auto q = handover_;
  if (!q)
    return;
  {
    std::lock_guard<std::mutex> guard{q->mtx};
    if (!q->open)
      return;
    // Sent under the lock: a sender that finds the queue closed goes after.
    uint64_t lost = 0;
    for (auto& f : q->frames)
      if (q->target->send_frame(std::move(f)))
        ++lost;
    q->frames.clear();
    q->open = false;
    if (lost > 0) {
      node_.dropped_messages += lost;
      log(log_level::warning,
          std::to_string(lost) + " frames for " + display_name()
            + " could not move to the connection that replaced this one");
    }
  }
  if (q->target->current_state() != state::closed) {
    // From now on new frames take the winner directly.
    std::lock_guard<std::mutex> guard{node_.peers_mutex()};
    if (route_->current().get() == this)
      route_->set(q->target);
  }
}

void peer::on_remote_retire() {
  if (end_of_retired_input(true))
    close_if_retired();
}

bool peer::end_of_retired_input(bool remote_retired) {
  std::shared_ptr<peer> winner;
  {
    std::lock_guard<std::mutex> guard{hold_mtx_};
    if (remote_retired && remote_retired_.exchange(true))
      return false;
    winner = release_on_retire_.lock();
    release_on_retire_.reset();
  }
  // A winner that waited for this connection's last frames waits no more.
  if (winner)
    winner->release();
  // The remote holds what arrives on the winner until our retire, which is
  // out already (or this connection closed): our queued frames may take the
  // winner now.
  if (retired_.load())
    hand_over();
  return true;
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
      held_bytes_ -= f.size();
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
