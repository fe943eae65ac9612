#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include <caf/error.hpp>

#include "common/byte_channel.hpp"
#include "common/reactor.hpp"
#include "common/socket_util.hpp"
#include "relay/transport.hpp"

namespace relay {

/// A relay::connection over a byte_channel: a connected stream socket (uds,
/// tcp) or shared-memory rings (shm), driven by a shared reactor.
///
/// Reading happens on the reactor thread: up to read_chunk bytes per
/// readiness event (more when the frame being assembled needs more), cut
/// into frames with frame_header::read and check_framing. Every complete
/// frame is passed to the handler with a body pointer into the read buffer,
/// without a copy. A bad magic closes the connection with
/// errc::protocol_error, a frame over options.max_frame_body with
/// errc::frame_too_large.
///
/// Writing: send() writes on the calling thread when nothing is queued, so
/// a lone message pays no thread hop. A sender that streams (its next
/// send() comes within coalesce_window of the previous one) hands its
/// frames to the reactor instead, which writes everything gathered by the
/// time it runs in one writev (up to max_iov frames): one system call and
/// one wake-up of the peer per batch instead of per frame. Channels whose
/// write is cheap (shm: byte_channel::coalesce_writes) always write
/// directly. The queue is
/// also where frames wait while the socket is full; the reactor flushes it
/// when the socket is writable. A per-connection mutex keeps frames whole
/// and in order.
///
/// Closing: close(), a framing error, EOF or a socket error lead to exactly
/// one on_closed on the reactor thread; the fd is closed right before it and
/// no callback follows it. Until then the reactor registration holds a
/// reference to the connection.
class stream_connection
  : public connection,
    public std::enable_shared_from_this<stream_connection> {
public:
  /// Bytes requested per read() when no large frame is being assembled,
  /// once reads have filled the buffer: a connection starts reading
  /// first_read_chunk at a time and grows (by 4) to this after each read
  /// that filled its buffer, so an idle connection keeps 4 KiB, not 64.
  static constexpr size_t read_chunk = 64 * 1024;
  static constexpr size_t first_read_chunk = 4 * 1024;

  /// Bound on close(reason, true): frames still queued after this long are
  /// dropped and the connection closes anyway.
  static constexpr std::chrono::seconds close_flush_timeout{5};

  /// Frames gathered into one sendmsg() by the reactor.
  static constexpr size_t max_iov = 256;

  /// A send() that follows the previous one within this interval joins the
  /// reactor's next batch instead of writing at once (see above). Long
  /// enough to catch a sender in a loop (about 1 µs per message), short
  /// against any round trip (above 10 µs even on one CPU), so request and
  /// response traffic keeps the direct write.
  static constexpr std::chrono::nanoseconds coalesce_window{8000};

  /// A streaming sender that finds this much queued for the reactor writes
  /// the queue itself (one writev), which bounds the queue by its own
  /// pace, as direct writes did.
  static constexpr size_t coalesce_bytes = 256 * 1024;

  /// Frames of at least this many bytes (header included) travel as a
  /// sealed memory file over a channel that passes descriptors (uds, fd;
  /// see bulk_frame.hpp): one copy into the file instead of two through
  /// the socket and no read buffer of the frame's size at the receiver.
  /// Below it, creating, filling, mapping and freeing a file's fresh pages
  /// costs more than the copies it saves: measured round trips over uds
  /// (relay_bench rtt, two CPUs) were slower as files at 256 KiB (1.4 against
  /// 0.8-1.2 ms) and faster from 512 KiB (2.4-2.7 against 3.4-3.8 ms).
  static constexpr size_t bulk_threshold = 512 * 1024;

  /// Memory files written that the peer may not have read yet, plus those
  /// queued: more go through the stream instead, like any frame, so that a
  /// peer that reads slowly (or paused reading) holds at most this many
  /// files, and the stream's own back-pressure (relay.max-queued-bytes)
  /// applies. The count restarts when the channel reports that the peer
  /// read everything (byte_channel::peer_caught_up: its socket's send
  /// queue is empty).
  static constexpr int max_files_in_flight = 4;

  /// Reads per readiness event from a channel that has more at once (see
  /// byte_channel::poll_more) before other connections get a turn.
  static constexpr int max_turns_per_event = 16;

  /// Makes a connection that owns `fd`, a connected stream socket in
  /// non-blocking mode. Nothing is read and no callback occurs before
  /// start(). `peer_name` describes the peer in every error and must not be
  /// empty. Thread-safe; never fails (errors surface as on_closed).
  static std::shared_ptr<stream_connection>
  make(std::shared_ptr<reactor> io, unique_fd fd, std::string peer_name,
       const transport_options& options);

  /// The same over any byte channel.
  static std::shared_ptr<stream_connection>
  make(std::shared_ptr<reactor> io, std::unique_ptr<byte_channel> channel,
       std::string peer_name, const transport_options& options);

  /// Closes the fd if the connection was never started.
  ~stream_connection() override;

  /// Registers with the reactor and starts delivering events to `handler`.
  /// Frames that arrived before are delivered after this call; a close()
  /// that came before is reported to `handler` now. Thread-safe. Calls after
  /// the first, and calls with a null handler, are ignored.
  void start(std::shared_ptr<connection_handler> handler) override;

  /// Sends one complete frame. Thread-safe; see connection::send. Errors:
  /// errc::invalid_argument for a frame whose header is malformed or does not
  /// match its size, errc::frame_too_large above options.max_frame_body,
  /// errc::connection_closed once close() was called or the socket broke.
  /// The queue of unsent frames is unbounded.
  caf::error send(frame_buffer frame) override;

  /// See connection::send_copy: a frame that goes as a memory file is
  /// copied only into the file.
  caf::error send_copy(const frame_buffer& frame) override;

  /// See connection::send_last.
  caf::error send_last(frame_buffer frame, successor next) override;

  /// Closes the connection; on_closed follows with `reason` (an empty reason
  /// becomes errc::connection_closed "closed locally"). Reading stops at once.
  /// With `flush`, queued frames are written first, for at most
  /// close_flush_timeout. Thread-safe and idempotent: the first reason wins.
  void close(const caf::error& reason, bool flush = false) override;

  void linger_on_close() override;

  /// See connection::allow_bulk: frames of bulk_threshold bytes and more
  /// then go as memory files if the channel passes descriptors.
  void allow_bulk() override;

  /// See connection::pause_reading. Frames already read stay in the read
  /// buffer (what one read brought, or one large frame) until resumed.
  bool pause_reading(bool paused) override;

  /// The description given to make(). Thread-safe.
  std::string peer_name() const override;

  /// See connection::traffic. Thread-safe.
  traffic_counters traffic() const noexcept override;

  /// Frames dropped from the queue when the connection closed or broke.
  uint64_t unsent_frames() const noexcept override;

  /// Use make().
  stream_connection(std::shared_ptr<reactor> io,
                    std::unique_ptr<byte_channel> channel,
                    std::string peer_name, const transport_options& options);

private:
  // -- reactor thread only ----------------------------------------------------

  void activate();
  void handle_events(uint32_t events);
  void read_some();
  // Applies paused_ to the reactor registration; on resume delivers what
  // the read buffer holds and reads on.
  void apply_pause();
  void deliver_frames();
  // Delivers the frame in the file a bulk frame announces, or closes the
  // connection (false) if the frame or the file is bad.
  bool deliver_bulk(const frame_header& header, const std::byte* body,
                    std::shared_ptr<connection_handler>& handler);
  void flush_queue();
  // Reports on_closed once; `fallback` is the reason unless one was recorded.
  void finalize(caf::error fallback);
  void close_now(errc code, const std::string& what);
  void ensure_read_space(size_t wanted);

  // send and send_copy: `owned` is &frame if the frame may be moved from.
  caf::error send_impl(frame_buffer* owned, const frame_buffer& frame);

  // Whether a large frame may go as a memory file now (see
  // max_files_in_flight); if so, counts it as pending. Takes mtx_.
  bool reserve_file();

  // Checks a frame handed to send() before anything is locked.
  caf::error check_frame(const frame_buffer& frame) const;

  // -- requires mtx_ ----------------------------------------------------------

  // Writes `frame` on the caller's thread if nothing is queued, else queues
  // it: moved from `owned` if not null (then &frame), else copied, only
  // what is left to write. `file` (a bulk frame's memory file) goes with
  // its first byte; `carried` is the file's size, counted as sent with the
  // bulk frame.
  caf::error send_locked(frame_buffer* owned, const frame_buffer& frame,
                         unique_fd file = unique_fd{}, size_t carried = 0);

  // write_queue_locked on the sender's thread; a broken socket fails the
  // connection's writes (write_failed_locked).
  void write_queued_locked();

  // Writes queued bytes until done or EAGAIN; returns the errno that broke
  // the socket, or 0.
  int write_queue_locked();
  uint32_t interest_locked() const;
  void update_interest_locked();
  // Marks the connection broken and has the reactor finalize it.
  void fail_locked(caf::error reason);
  // The queue of a closing connection is empty: finalizes, or (lingering)
  // ends the write direction and starts draining. Unlocks `lock`.
  void flushed_locked(std::unique_lock<std::mutex>& lock);
  // A write failed (the peer closed or reset): writing stops, what is
  // queued is dropped, and reading goes on until the peer's hang-up (at
  // most close_flush_timeout), so that what it sent before closing, which
  // may well be a goodbye, is still delivered. A close() in progress ends
  // at once.
  void write_failed_locked(caf::error reason);
  // Discards the queue, counting its frames as unsent.
  void drop_queue_locked();
  // A memory file went out with its frame's first bytes.
  void file_written_locked();

  caf::error closed_error() const;

  // -- immutable after construction -------------------------------------------

  const std::shared_ptr<reactor> io_;
  const std::string peer_name_;
  const transport_options options_;
  const bool coalesce_; // the channel's coalesce_writes()
  const bool bulk_;     // the channel's passes_fds()

  // -- guarded by mtx_ --------------------------------------------------------

  mutable std::mutex mtx_;
  std::unique_ptr<byte_channel> chan_;
  reactor::token token_ = 0;
  bool registered_ = false;
  bool started_ = false;
  bool closing_ = false;  // close() was called or the socket broke
  bool flush_ = false;    // closing_ with flush requested
  bool linger_ = false;   // linger_on_close was called
  // A lingering close sent its last frame and ended the write direction;
  // what arrives is read and discarded until the peer hangs up.
  std::atomic<bool> draining_{false};
  bool write_failed_ = false; // see write_failed_locked
  caf::error write_failure_;
  bool finalized_ = false;
  uint32_t interest_ = 0; // epoll events currently registered
  caf::error close_reason_;
  // A frame waiting to be written, with the memory file of a bulk frame
  // until it went out with the frame's first bytes.
  // The file's size counts in queued_bytes_ until it went.
  struct queued_frame {
    frame_buffer bytes;
    unique_fd file;
    size_t carried = 0; // the file's size while it waits
  };
  std::deque<queued_frame> out_;
  size_t out_offset_ = 0; // bytes of out_.front() already written
  // A flush_queue() is dispatched to the reactor for frames that send()
  // coalesced; no EPOLLOUT interest is needed until it ran.
  bool flush_posted_ = false;
  // After a queue write met a full channel, a streaming sender tries again
  // only once this much is queued (another coalesce_bytes), not at every
  // send; 0 once the reactor flushed.
  size_t retry_at_ = 0;
  // Memory files reserved or queued, not written yet; and written since
  // the peer was last seen to have read everything (max_files_in_flight).
  int files_pending_ = 0;
  int files_written_ = 0;
  std::chrono::steady_clock::time_point last_send_{}; // previous send_locked
  std::shared_ptr<connection_handler> handler_; // set once by start()
  successor successor_; // set by send_last: where later frames go

  // -- set by any thread, read by the reactor thread ---------------------------

  std::atomic<bool> read_stopped_{false};
  std::atomic<bool> paused_{false}; // pause_reading's latest wish
  std::atomic<bool> bulk_allowed_{false}; // allow_bulk was called
  std::atomic<bool> bulk_failed_{false};  // a memory file could not be made

  // -- counters: one writer at a time (under mtx_ or on the reactor thread),
  // relaxed stores, read by anyone; in and out on separate cache lines -----

  /// Adds `n` to a counter that only one thread writes at a time.
  static void bump(std::atomic<uint64_t>& x, uint64_t n) noexcept {
    x.store(x.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  alignas(64) std::atomic<uint64_t> frames_out_{0}; // under mtx_
  std::atomic<uint64_t> bytes_out_{0};              // under mtx_
  std::atomic<uint64_t> queued_bytes_{0};           // under mtx_
  std::atomic<uint64_t> unsent_frames_{0};          // under mtx_
  alignas(64) std::atomic<uint64_t> frames_in_{0};  // reactor thread
  std::atomic<uint64_t> bytes_in_{0};               // reactor thread

  // -- reactor thread only ----------------------------------------------------

  size_t read_size_ = first_read_chunk; // see read_chunk
  std::unique_ptr<std::byte[]> rbuf_;
  size_t rcap_ = 0;
  size_t rbeg_ = 0; // first unconsumed byte
  size_t rend_ = 0; // one past the last received byte
};

} // namespace relay
