#include "session.hpp"

#include <algorithm>
#include <cstring>

#include "relay/error.hpp"
#include "relay/frame_handler.hpp"
#include "relay/wire_archive.hpp"

namespace relay {

session::session(size_t resend_bound, uint64_t token)
  : bound_(resend_bound), token_(token) {
  // nop
}

bool session::sequenced(frame_kind kind) noexcept {
  switch (kind) {
    case frame_kind::hello:
    case frame_kind::reject:
    case frame_kind::heartbeat:
    case frame_kind::retire:
    case frame_kind::ack:
    case frame_kind::resume:
    case frame_kind::goodbye:
    case frame_kind::probe:
    case frame_kind::probe_reply:
      return false;
    default:
      return true;
  }
}

frame_buffer session::count_frame(frame_kind kind, uint64_t count) {
  auto buf = begin_frame(8);
  wire_writer out{buf};
  out(count);
  finish_frame(buf, kind);
  return buf;
}

connection_ptr session::carrier() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return conn_;
}

void session::attach(connection_ptr conn) {
  std::lock_guard<std::mutex> guard{mtx_};
  conn_ = std::move(conn);
}

caf::error session::send(frame_buffer frame, bool essential) {
  auto kind = static_cast<frame_kind>(frame[5]);
  std::unique_lock<std::mutex> guard{mtx_};
  // A retired connection passes frames to its successor even once closed.
  if (pass_through_ && conn_)
    return conn_->send(std::move(frame));
  if (ended_)
    return make_error(errc::connection_closed, "the session is over");
  if (!sequenced(kind)) {
    if (!conn_)
      return make_error(errc::node_unreachable,
                        "the connection is broken; waiting to resume");
    return conn_->send(std::move(frame));
  }
  if (suspended_ && !essential && used_ + frame.size() > bound_)
    return make_error(errc::overloaded,
                      "the connection is broken and the frames kept for "
                      "resuming it fill the bound of "
                        + std::to_string(bound_)
                        + " bytes (relay.resume-buffer)");
  ++sent_;
  keep_and_send(std::move(frame));
  return caf::none;
}

void session::pass_through() {
  std::lock_guard<std::mutex> guard{mtx_};
  pass_through_ = true;
  clear_kept();
}

bool session::ended() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return ended_;
}

void session::suspend() {
  std::lock_guard<std::mutex> guard{mtx_};
  conn_ = nullptr;
  suspended_ = !ended_ && !pass_through_;
  suspended_at_ = std::chrono::steady_clock::now();
}

std::chrono::milliseconds session::suspended_for() const {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!suspended_)
    return std::chrono::milliseconds{0};
  return std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - suspended_at_);
}

bool session::suspended() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return suspended_;
}

caf::expected<uint64_t> session::resume(connection_ptr conn,
                                        uint64_t remote_dispatched,
                                        frame_buffer first) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (ended_)
    return make_error(errc::session_lost, "the session is over");
  if (remote_dispatched > sent_ || remote_dispatched < acked_)
    return make_error(errc::protocol_error,
                      "the peer claims " + std::to_string(remote_dispatched)
                        + " frames of a session in which "
                        + std::to_string(sent_) + " were sent and "
                        + std::to_string(acked_) + " acknowledged");
  auto first_kept = sent_ - kept_.size() + 1;
  if (remote_dispatched + 1 < first_kept)
    return make_error(errc::session_lost,
                      "frames " + std::to_string(remote_dispatched + 1)
                        + " to " + std::to_string(first_kept - 1)
                        + " were evicted from the resend buffer "
                          "(relay.resume-buffer, "
                        + std::to_string(bound_) + " bytes)");
  while (acked_ < remote_dispatched) {
    if (sent_ - acked_ == kept_.size())
      pop_front();
    ++acked_;
  }
  if (!first.empty())
    conn->send(std::move(first));
  uint64_t resent = 0;
  size_t offset = head_;
  for (auto& kept : kept_) {
    if (!kept.large.empty()) {
      conn->send_copy(kept.large);
    } else {
      conn->send(copy_at(offset, kept.size));
      offset = (offset + kept.size) % ring_.size();
    }
    ++resent;
  }
  conn_ = std::move(conn);
  suspended_ = false;
  unsent_ = 0;
  return resent;
}

uint64_t session::end_final() {
  std::lock_guard<std::mutex> guard{mtx_};
  auto unsent = unsent_;
  unsent_ = 0;
  end_locked();
  return unsent;
}

uint64_t session::end() {
  std::lock_guard<std::mutex> guard{mtx_};
  return end_locked();
}

uint64_t session::end_locked() {
  ended_ = true;
  suspended_ = false;
  if (!pass_through_)
    conn_ = nullptr;
  auto unacked = sent_ - acked_;
  clear_kept();
  return unacked;
}

caf::error session::on_ack(uint64_t count) {
  std::lock_guard<std::mutex> guard{mtx_};
  // A retired connection: the remote may count frames that passed it
  // unnumbered (before it retired too); nothing is kept to release.
  if (pass_through_)
    return caf::none;
  if (count > sent_)
    return make_error(errc::protocol_error,
                      "ack of " + std::to_string(count) + " frames, but only "
                        + std::to_string(sent_) + " were sent");
  // Acks may arrive out of order (the heartbeat's and the I/O thread's
  // race to the wire); an older one says nothing new.
  while (acked_ < count) {
    if (sent_ - acked_ == kept_.size())
      pop_front();
    ++acked_;
  }
  trim();
  return caf::none;
}

uint64_t session::on_dispatched(size_t size) noexcept {
  if (pass_through_.load())
    return 0;
  auto n = dispatched_.load(std::memory_order_relaxed) + 1;
  dispatched_.store(n);
  bytes_since_ack_ += size;
  if (n - acked_out_.load() < ack_every_frames
      && bytes_since_ack_ < ack_every_bytes)
    return 0;
  bytes_since_ack_ = 0;
  acked_out_.store(n);
  return n;
}

uint64_t session::ack_due() noexcept {
  if (pass_through_.load())
    return 0;
  auto n = dispatched_.load();
  auto old = acked_out_.load();
  if (n == old || !acked_out_.compare_exchange_strong(old, n))
    return 0;
  return n;
}

uint64_t session::sent() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return sent_;
}

size_t session::kept_bytes() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return used_;
}

// -- the resend ring ------------------------------------------------------------

void session::keep_and_send(frame_buffer frame) {
  auto size = frame.size();
  if (size > bound_) {
    // Cannot be kept at all: everything before it is useless too.
    while (!kept_.empty())
      pop_front();
    // Numbered but not kept: kept_ stays empty, so first_kept = sent_ + 1.
    // If the connection just broke, the frame is lost with the session.
    if (conn_ && conn_->send(std::move(frame)))
      ++unsent_;
    return;
  }
  while (used_ + size > bound_)
    pop_front();
  used_ += size;
  // Kept first: if the connection just broke, the frame goes out again
  // when the session resumes; if it closed for good, end() counts it.
  if (size >= large_frame) {
    kept_.push_back(kept_frame{static_cast<uint32_t>(size), std::move(frame)});
    if (conn_ && conn_->send_copy(kept_.back().large))
      ++unsent_;
    return;
  }
  if (ring_used_ + size > ring_.size())
    grow(ring_used_ + size);
  auto cap = ring_.size();
  auto tail = (head_ + ring_used_) % cap;
  auto first = std::min(size, cap - tail);
  std::memcpy(ring_.data() + tail, frame.data(), first);
  if (first < size)
    std::memcpy(ring_.data(), frame.data() + first, size - first);
  ring_used_ += size;
  kept_.push_back(kept_frame{static_cast<uint32_t>(size), frame_buffer{}});
  if (conn_ && conn_->send(std::move(frame)))
    ++unsent_;
}

void session::pop_front() {
  if (kept_.empty())
    return;
  auto& front = kept_.front();
  auto size = front.size;
  used_ -= size;
  if (front.large.empty()) {
    ring_used_ -= size;
    head_ = ring_used_ == 0 ? 0 : (head_ + size) % ring_.size();
  }
  kept_.pop_front();
}

void session::clear_kept() {
  kept_.clear();
  used_ = 0;
  ring_used_ = 0;
  head_ = 0;
  std::vector<std::byte>{}.swap(ring_);
}

void session::trim() {
  // All acknowledged: the ring goes back to the allocator (an idle
  // connection keeps no zero-filled 4 KiB; a busy one reallocates it once
  // per acknowledgement, every 256 frames or 1 MiB at most).
  if (ring_used_ == 0 && !ring_.empty()) {
    std::vector<std::byte>{}.swap(ring_);
    head_ = 0;
  }
}

frame_buffer session::copy_at(size_t offset, size_t size) const {
  frame_buffer result(size);
  auto cap = ring_.size();
  auto first = std::min(size, cap - offset);
  std::memcpy(result.data(), ring_.data() + offset, first);
  if (first < size)
    std::memcpy(result.data() + first, ring_.data(), size - first);
  return result;
}

void session::grow(size_t need) {
  auto cap = std::max<size_t>(ring_.size() * 2, min_ring);
  while (cap < need)
    cap *= 2;
  cap = std::min(cap, bound_);
  std::vector<std::byte> bigger(cap);
  // Linearize: the oldest frame at offset 0.
  auto old_cap = ring_.size();
  if (ring_used_ > 0) {
    auto first = std::min(ring_used_, old_cap - head_);
    std::memcpy(bigger.data(), ring_.data() + head_, first);
    if (first < ring_used_)
      std::memcpy(bigger.data() + first, ring_.data(), ring_used_ - first);
  }
  ring_.swap(bigger);
  head_ = 0;
}

} // namespace relay
