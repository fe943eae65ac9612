#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "relay/transport.hpp"

namespace relay {

/// The sequenced frame stream between two nodes, which may outlive the
/// connection that carries it: when a connection breaks, the next one to the
/// same node (same incarnation) resumes the session where the last left off,
/// losing, duplicating and reordering nothing (see docs/reconnect.md).
///
/// Sequence numbers are implicit: every connection is a reliable, ordered
/// frame stream, so a frame's number is its position among the session's
/// sequenced frames (every frame but the connection-level ones: hello,
/// reject, heartbeat, retire, ack, resume, goodbye, probe, probe_reply). Each side counts the
/// sequenced frames it sends and the ones it dispatched, acknowledges the
/// latter cumulatively (ack frames) and keeps what it sent until the remote
/// acknowledged it, in a byte ring bounded by `resend_bound`. After a break
/// each side tells the other how many frames it dispatched (the resuming
/// hello, the resume frame); each resends the rest. The scheme is TCP's
/// (RFC 9293: cumulative acknowledgement, retransmission from a buffer)
/// one level up, across connections; counting frames instead of bytes keeps
/// the numbers off the wire.
///
/// Ownership: shared by the connections (peers) that carry it in turn.
/// Thread rules: thread-safe. send() writes on the caller's thread under the
/// session's lock, so the order of numbers is the order on the wire; the
/// dispatch counters are only advanced by the I/O thread of the carrying
/// connection.
class session {
public:
  /// `resend_bound` bounds the bytes kept for resending. Frames past it
  /// evict the oldest ones; the session then cannot resume until the remote
  /// acknowledged past every evicted frame.
  explicit session(size_t resend_bound, uint64_t token);

  /// Names the session between its two nodes for as long as it lasts: the
  /// initiator's serial of its first connection.
  uint64_t token() const noexcept {
    return token_;
  }

  /// Whether frames of `kind` are numbered (see the class comment).
  static bool sequenced(frame_kind kind) noexcept;

  /// An ack or resume frame carrying `count`.
  static frame_buffer count_frame(frame_kind kind, uint64_t count);

  /// Sends `frame`, numbering it if its kind is sequenced and keeping a
  /// copy until acknowledged. While suspended, keeps it only: it goes out
  /// when the session resumes. Errors: the session ended (`end`); suspended
  /// with the ring full (errc::overloaded, naming the bound), unless
  /// `essential` (responses, monitor, down, link and unlink frames, whose
  /// loss would go unnoticed: they are kept past the bound); for frames
  /// that are not numbered, the connection's own errors.
  caf::error send(frame_buffer frame, bool essential = false);

  /// The connection that carries the session now, or null while suspended
  /// or after end().
  connection_ptr carrier() const;

  /// Starts carrying the session on `conn` (the first connection).
  void attach(connection_ptr conn);

  /// The carrying connection broke: frames are kept, not sent, until
  /// resume() or end().
  void suspend();

  /// Whether the session waits for a resuming connection.
  bool suspended() const;

  /// How long the session has been suspended (zero if it is not).
  std::chrono::milliseconds suspended_for() const;

  /// Continues on `conn` after the remote said it dispatched
  /// `remote_dispatched` of our frames: drops what it has, sends `first`
  /// (if not empty; the resume frame) and then every later frame, in
  /// order. Returns the number of frames resent, or an error if the count
  /// is impossible (more than was sent, fewer than acknowledged) or frames
  /// it lacks were evicted (errc::session_lost); the session is unchanged
  /// then.
  caf::expected<uint64_t> resume(connection_ptr conn, uint64_t remote_dispatched,
                                 frame_buffer first);

  /// The connection retired as a duplicate (retire.cpp): from now on frames
  /// pass to it unnumbered and unkept (its successor numbers them), and the
  /// session never resumes. What it kept was delivered before the retire.
  void pass_through();

  /// Whether end() was called.
  bool ended() const;

  /// The connection closed for good (not a break): ends the session and
  /// returns the numbered frames that never reached a connection (their
  /// send failed as it closed), to count as dropped.
  uint64_t end_final();

  /// The session is over (given up or closed): drops what is kept. Returns
  /// the number of sequenced frames that were sent or kept and never
  /// acknowledged (they may or may not have arrived).
  uint64_t end();

  /// The remote acknowledged `count` frames. Errors (a protocol violation):
  /// `count` exceeds what was sent or goes backwards.
  caf::error on_ack(uint64_t count);

  /// Counts a dispatched sequenced frame of `size` bytes. Returns the count
  /// to acknowledge if an ack is due (every ack_every_frames frames or
  /// ack_every_bytes bytes), else 0. I/O thread only.
  uint64_t on_dispatched(size_t size) noexcept;

  /// The count to acknowledge if frames arrived since the last ack, else 0
  /// (the periodic ack of a quiet connection). Any thread.
  uint64_t ack_due() noexcept;

  /// Sequenced frames dispatched so far.
  uint64_t dispatched() const noexcept {
    return dispatched_.load();
  }

  /// Sequenced frames sent (or kept while suspended) so far.
  uint64_t sent() const;

  /// Bytes kept for resending.
  size_t kept_bytes() const;

  /// Frames between acknowledgements.
  static constexpr uint64_t ack_every_frames = 256;

  /// Bytes between acknowledgements.
  static constexpr size_t ack_every_bytes = size_t{1} << 20;

private:
  // -- the resend buffer (guarded by mtx_) -------------------------------------

  uint64_t end_locked();
  // Keeps `frame` (its bytes copied into the ring, or the buffer itself if
  // large) and sends it on conn_ if there is one.
  void keep_and_send(frame_buffer frame);
  void pop_front();
  frame_buffer copy_at(size_t offset, size_t size) const;
  void grow(size_t need);
  void clear_kept();
  // Frees the ring once all is acknowledged: an idle session holds none.
  void trim();

  // The ring starts small and doubles: an idle connection's session holds
  // a few handshake-time frames, and the ring is zero-filled when it grows
  // (64 KiB from the start made 64 KiB of resident memory per connection).
  static constexpr size_t min_ring = 4 * 1024;

  /// Frames of at least this many bytes are kept as they are, not copied
  /// into the ring, and go to the connection with connection::send_copy
  /// (which copies them once, into the socket or a memory file): no copy
  /// into the ring, no ring grown (and zero-filled) to their size.
  static constexpr size_t large_frame = 64 * 1024;

  const size_t bound_;
  const uint64_t token_;
  mutable std::mutex mtx_;
  connection_ptr conn_;       // null while suspended
  bool suspended_ = false;
  bool ended_ = false;
  // Read without the lock by on_dispatched.
  std::atomic<bool> pass_through_{false};
  std::chrono::steady_clock::time_point suspended_at_;
  uint64_t sent_ = 0;         // sequenced frames numbered so far
  uint64_t acked_ = 0;        // acknowledged by the remote
  uint64_t unsent_ = 0;       // numbered, but the connection refused them
  std::vector<std::byte> ring_;
  size_t head_ = 0;           // offset of the oldest frame in the ring
  size_t ring_used_ = 0;      // bytes in the ring
  size_t used_ = 0;           // bytes kept, ring and large frames
  // A kept frame, oldest first: `size` bytes in the ring, or in `large`.
  struct kept_frame {
    uint32_t size;
    frame_buffer large; // empty for a frame in the ring
  };
  std::deque<kept_frame> kept_;
  // Frames sent_ - kept_.size() + 1 .. sent_ are kept; those before that
  // and after acked_ were evicted.

  std::atomic<uint64_t> dispatched_{0};
  std::atomic<uint64_t> acked_out_{0}; // the last count we acknowledged
  size_t bytes_since_ack_ = 0;         // I/O thread
};

} // namespace relay
