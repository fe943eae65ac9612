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
  push(frame);
  // Kept above: if the connection just broke, the frame goes out again
  // when the session resumes; if it closed for good, end() counts it.
  if (conn_ && conn_->send(std::move(frame)))
    ++unsent_;
  return caf::none;
}

void session::pass_through() {
  std::lock_guard<std::mutex> guard{mtx_};
  pass_through_ = true;
  sizes_.clear();
  used_ = 0;
  head_ = 0;
  std::vector<std::byte>{}.swap(ring_);
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
  auto first_kept = sent_ - sizes_.size() + 1;
  if (remote_dispatched + 1 < first_kept)
    return make_error(errc::session_lost,
                      "frames " + std::to_string(remote_dispatched + 1)
                        + " to " + std::to_string(first_kept - 1)
                        + " were evicted from the resend buffer "
                          "(relay.resume-buffer, "
                        + std::to_string(bound_) + " bytes)");
  while (acked_ < remote_dispatched) {
    if (sent_ - acked_ == sizes_.size())
      pop_front();
    ++acked_;
  }
  if (!first.empty())
    conn->send(std::move(first));
  uint64_t resent = 0;
  size_t offset = head_;
  for (auto size : sizes_) {
    conn->send(copy_at(offset, size));
    offset = (offset + size) % ring_.size();
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
  sizes_.clear();
  used_ = 0;
  head_ = 0;
  std::vector<std::byte>{}.swap(ring_);
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
    if (sent_ - acked_ == sizes_.size())
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

void session::push(const frame_buffer& frame) {
  auto size = frame.size();
  if (size > bound_) {
    // Cannot be kept at all: everything before it is useless too.
    while (!sizes_.empty())
      pop_front();
    // Numbered but not kept: sizes_ stays empty, so first_kept = sent_ + 1.
    return;
  }
  while (used_ + size > bound_)
    pop_front();
  if (used_ + size > ring_.size())
    grow(used_ + size);
  auto cap = ring_.size();
  auto tail = (head_ + used_) % cap;
  auto first = std::min(size, cap - tail);
  std::memcpy(ring_.data() + tail, frame.data(), first);
  if (first < size)
    std::memcpy(ring_.data(), frame.data() + first, size - first);
  used_ += size;
  sizes_.push_back(static_cast<uint32_t>(size));
}

void session::pop_front() {
  if (sizes_.empty())
    return;
  auto size = sizes_.front();
  sizes_.pop_front();
  used_ -= size;
  head_ = used_ == 0 ? 0 : (head_ + size) % ring_.size();
}

void session::trim() {
  // All acknowledged: a ring that a burst made large goes back to the
  // allocator.
  if (used_ == 0 && ring_.size() > max_idle_ring) {
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
  if (used_ > 0) {
    auto first = std::min(used_, old_cap - head_);
    std::memcpy(bigger.data(), ring_.data() + head_, first);
    if (first < used_)
      std::memcpy(bigger.data() + first, ring_.data(), used_ - first);
  }
  ring_.swap(bigger);
  head_ = 0;
}

} // namespace relay
