#include "common/stream_connection.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/bulk_frame.hpp"
#include "common/transport_log.hpp"
#include "relay/error.hpp"

namespace relay {

std::shared_ptr<stream_connection>
stream_connection::make(std::shared_ptr<reactor> io, unique_fd fd,
                        std::string peer_name,
                        const transport_options& options) {
  return make(std::move(io), std::make_unique<socket_channel>(std::move(fd)),
              std::move(peer_name), options);
}

std::shared_ptr<stream_connection>
stream_connection::make(std::shared_ptr<reactor> io,
                        std::unique_ptr<byte_channel> channel,
                        std::string peer_name,
                        const transport_options& options) {
  return std::make_shared<stream_connection>(std::move(io), std::move(channel),
                                             std::move(peer_name), options);
}

stream_connection::stream_connection(std::shared_ptr<reactor> io,
                                     std::unique_ptr<byte_channel> channel,
                                     std::string peer_name,
                                     const transport_options& options)
  : io_(std::move(io)),
    peer_name_(peer_name.empty() ? "unnamed peer" : std::move(peer_name)),
    options_(options),
    coalesce_(channel->coalesce_writes()),
    bulk_(channel->passes_fds()),
    chan_(std::move(channel)) {
  // nop
}

// A started connection is referenced by its reactor registration until
// finalize(), so only a never-started one can still own its channel here.
stream_connection::~stream_connection() = default;

// -- connection interface -----------------------------------------------------

void stream_connection::start(std::shared_ptr<connection_handler> handler) {
  if (!handler)
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  if (started_)
    return;
  started_ = true;
  handler_ = std::move(handler);
  // Queued under mtx_ so that any finalize() a later close() queues runs
  // after activate().
  io_->dispatch([self = shared_from_this()] { self->activate(); });
}

caf::error stream_connection::check_frame(const frame_buffer& frame) const {
  if (frame.size() < frame_header::size)
    return make_error(errc::invalid_argument,
                      peer_name_ + ": cannot send a frame of "
                        + std::to_string(frame.size())
                        + " bytes, shorter than its header");
  auto header = frame_header::read(frame.data());
  if (header.magic != frame_header::magic_value)
    return make_error(errc::invalid_argument,
                      peer_name_ + ": cannot send a frame with "
                        + header.check_framing(header.length));
  if (header.length != frame.size() - frame_header::size)
    return make_error(errc::invalid_argument,
                      peer_name_ + ": cannot send a frame whose header says "
                        + std::to_string(header.length) + " body bytes but has "
                        + std::to_string(frame.size() - frame_header::size));
  if (auto why = header.check_framing(options_.max_frame_body); !why.empty())
    return make_error(errc::frame_too_large,
                      peer_name_ + ": cannot send: " + why);
  return caf::none;
}

caf::error stream_connection::send(frame_buffer frame) {
  return send_impl(&frame, frame);
}

caf::error stream_connection::send_copy(const frame_buffer& frame) {
  return send_impl(nullptr, frame);
}

caf::error stream_connection::send_impl(frame_buffer* owned,
                                        const frame_buffer& frame) {
  if (auto err = check_frame(frame))
    return err;
  // A large frame goes into its memory file before the lock is taken, so
  // that other senders and the reactor do not wait for the copy.
  std::optional<bulk_out> bulk;
  if (bulk_ && frame.size() >= bulk_threshold
      && bulk_allowed_.load(std::memory_order_relaxed)
      && reserve_file()) {
    if (auto made = make_bulk(frame, peer_name_)) {
      bulk = std::move(*made);
    } else {
      // Through the stream instead, like any frame: slower, not lost.
      if (!bulk_failed_.exchange(true))
        transport_log(describe(made.error())
                      + "; large frames go through the stream");
      std::lock_guard<std::mutex> guard{mtx_};
      --files_pending_;
    }
  }
  std::unique_lock<std::mutex> guard{mtx_};
  if (successor_) {
    if (bulk)
      --files_pending_; // the file is dropped; the successor gets the frame
    auto next = successor_;
    guard.unlock();
    return next(owned ? std::move(*owned) : frame_buffer{frame});
  }
  if (bulk)
    return send_locked(&bulk->frame, bulk->frame, std::move(bulk->file),
                       frame.size());
  return send_locked(owned, frame);
}

bool stream_connection::reserve_file() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!chan_ || closing_)
    return false;
  if (files_written_ + files_pending_ >= max_files_in_flight) {
    if (files_written_ == 0 || !chan_->peer_caught_up())
      return false;
    files_written_ = 0; // the peer took every file written so far
    if (files_pending_ >= max_files_in_flight)
      return false;
  }
  ++files_pending_;
  return true;
}

caf::error stream_connection::send_last(frame_buffer frame, successor next) {
  if (!next)
    return make_error(errc::invalid_argument,
                      peer_name_ + ": send_last needs a successor");
  if (auto err = check_frame(frame))
    return err;
  std::lock_guard<std::mutex> guard{mtx_};
  if (successor_)
    return make_error(errc::connection_closed,
                      peer_name_ + ": the last frame was sent already");
  // Under one lock: nothing can slip in behind the last frame.
  successor_ = std::move(next);
  return send_locked(&frame, frame);
}

caf::error stream_connection::send_locked(frame_buffer* owned,
                                          const frame_buffer& frame,
                                          unique_fd file, size_t carried) {
  if (closing_ || finalized_)
    return closed_error();
  if (write_failed_)
    return write_failure_;
  bump(frames_out_, 1);
  bump(bytes_out_, frame.size() + (file ? carried : 0));
  if (!file)
    carried = 0;
  // The bytes from `offset` on, to keep in the queue: moved if we own the
  // frame, else copied (only what is left to write).
  auto enqueue = [&](size_t offset) {
    bump(queued_bytes_, frame.size() - offset + carried);
    if (owned) {
      if (out_.empty())
        out_offset_ = offset;
      else
        assert(offset == 0);
      out_.push_back(queued_frame{std::move(*owned), std::move(file), carried});
    } else {
      out_.push_back(queued_frame{frame_buffer(frame.begin() + offset,
                                               frame.end()),
                                  std::move(file), carried});
    }
  };
  bool streaming = false;
  if (coalesce_) {
    auto now = std::chrono::steady_clock::now();
    streaming = now - last_send_ < coalesce_window;
    last_send_ = now;
  }
  if (streaming && registered_ && (out_.empty() || flush_posted_)) {
    // A sender in a loop: the reactor writes this frame together with the
    // ones that follow it meanwhile.
    enqueue(0);
    if (!flush_posted_) {
      flush_posted_ = true;
      io_->dispatch([self = shared_from_this()] { self->flush_queue(); });
    }
    // A sender faster than the reactor (which may even share its CPU)
    // writes the batch itself once it is large: the queue stays short,
    // as with direct writes, and each write still carries many frames.
    // Accepted either way: if the write breaks the socket, this frame is
    // counted with the rest of the queue (unsent_frames).
    if (queued_bytes_.load(std::memory_order_relaxed)
        >= std::max(coalesce_bytes, retry_at_))
      write_queued_locked();
    return caf::none;
  }
  if (!out_.empty()) {
    enqueue(0);
    update_interest_locked();
    return caf::none;
  }
  // Nothing queued: write on the caller's thread, no hop to the reactor.
  size_t written = 0;
  while (written < frame.size()) {
    iovec iov{const_cast<std::byte*>(frame.data()) + written,
              frame.size() - written};
    auto n = file ? chan_->write_fd(&iov, 1, file.get())
                  : chan_->write(&iov, 1);
    if (n > 0 && file) {
      file.reset(); // it went with these bytes
      file_written_locked();
      carried = 0;
    }
    if (n >= 0) {
      written += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else if (errno != EINTR) {
      auto err = errno;
      auto reason = make_error(errc::connection_closed,
                               peer_name_ + ": write failed: "
                                 + chan_->error_text(err));
      write_failed_locked(reason);
      return reason;
    }
  }
  if (written == frame.size())
    return caf::none;
  enqueue(written);
  update_interest_locked();
  return caf::none;
}

void stream_connection::close(const caf::error& reason, bool flush) {
  auto why = reason ? reason
                    : make_error(errc::connection_closed,
                                 peer_name_ + ": closed locally");
  std::lock_guard<std::mutex> guard{mtx_};
  if (closing_ || finalized_)
    return;
  closing_ = true;
  flush_ = flush;
  close_reason_ = std::move(why);
  read_stopped_ = true;
  // Before activation, activate() (already queued if started) finishes the
  // close; before start(), start() does.
  if (!registered_)
    return;
  if (flush && (!out_.empty() || linger_)) {
    update_interest_locked(); // drops EPOLLIN: reading stops now
    std::weak_ptr<stream_connection> weak = shared_from_this();
    io_->dispatch_after(close_flush_timeout, [weak] {
      if (auto self = weak.lock())
        self->finalize(caf::none);
    });
    if (out_.empty())
      io_->dispatch([self = shared_from_this()] { self->flush_queue(); });
    return;
  }
  io_->dispatch([self = shared_from_this()] { self->finalize(caf::none); });
}

void stream_connection::allow_bulk() {
  bulk_allowed_.store(true, std::memory_order_relaxed);
}

void stream_connection::linger_on_close() {
  std::lock_guard<std::mutex> guard{mtx_};
  linger_ = true;
}

void stream_connection::flushed_locked(std::unique_lock<std::mutex>& lock) {
  if (!(flush_ && linger_) || draining_ || write_failed_
      || !chan_->shutdown_write()) {
    lock.unlock();
    finalize(caf::none);
    return;
  }
  draining_ = true;
  read_stopped_ = false;
  update_interest_locked();
  // The close is complete for the handler now; only the socket lingers.
  auto handler = std::move(handler_);
  auto reason = close_reason_;
  lock.unlock();
  rbeg_ = rend_ = 0; // frames read before the close are not delivered now
  if (handler)
    handler->on_closed(*this, reason);
  // The peer may have hung up already (its EOF was reported while we did
  // not watch).
  handle_events(EPOLLIN);
}

bool stream_connection::pause_reading(bool paused) {
  if (paused_.exchange(paused) != paused)
    io_->dispatch([self = shared_from_this()] { self->apply_pause(); });
  return true;
}

std::string stream_connection::peer_name() const {
  return peer_name_;
}

// -- reactor thread -----------------------------------------------------------

void stream_connection::activate() {
  std::unique_lock<std::mutex> lock{mtx_};
  if (finalized_)
    return;
  if (closing_ && !(flush_ && !out_.empty())) {
    lock.unlock();
    finalize(caf::none);
    return;
  }
  auto self = shared_from_this();
  auto events = interest_locked();
  auto id = io_->add(chan_->fd(),
                     chan_->watch(events & ~uint32_t{EPOLLET})
                       | (events & EPOLLET),
                     [self](uint32_t ev) { self->handle_events(ev); });
  if (!id) {
    auto reason = make_error(errc::connection_closed,
                             peer_name_ + ": cannot watch the socket: "
                               + describe(id.error()));
    lock.unlock();
    finalize(std::move(reason));
    return;
  }
  token_ = *id;
  registered_ = true;
  interest_ = events;
  if (chan_->has_buffered_input())
    io_->dispatch([self] {
      if (!self->read_stopped_ && !self->paused_ && self->chan_)
        self->handle_events(EPOLLIN);
    });
  if (closing_) {
    std::weak_ptr<stream_connection> weak = self;
    io_->dispatch_after(close_flush_timeout, [weak] {
      if (auto conn = weak.lock())
        conn->finalize(caf::none);
    });
  }
}

void stream_connection::apply_pause() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (finalized_ || !registered_)
      return;
    update_interest_locked();
  }
  if (paused_ || read_stopped_)
    return;
  // Resumed: first what was read before the pause, then whatever the
  // peer sent meanwhile (its readiness may have been reported while we
  // did not watch).
  deliver_frames();
  if (!paused_ && !read_stopped_ && chan_)
    handle_events(EPOLLIN);
}

void stream_connection::handle_events(uint32_t events) {
  events = chan_->on_ready(events);
  // While paused nothing is read, not even a hang-up: what the peer sent
  // before it is delivered first, on resume (watched edge-triggered
  // meanwhile, so a hang-up reported whatever we watch does not spin).
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0 && !read_stopped_
      && (!paused_ || draining_)) {
    read_some();
    // A channel that can have more at once (shm) gets a bounded number of
    // turns, then yields the I/O thread to everyone else and comes back.
    for (int turn = 0; !read_stopped_ && !paused_ && chan_ && chan_->poll_more();
         ++turn) {
      if (turn == max_turns_per_event) {
        io_->dispatch([self = shared_from_this()] {
          if (!self->read_stopped_ && !self->paused_ && self->chan_)
            self->handle_events(EPOLLIN);
        });
        break;
      }
      read_some();
    }
  }
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0)
    flush_queue();
}

void stream_connection::read_some() {
  // Read at least what the frame being assembled still lacks, so that a
  // large frame needs few read calls.
  auto avail = rend_ - rbeg_;
  size_t frame_total = frame_header::size;
  if (avail >= frame_header::size)
    frame_total += frame_header::read(rbuf_.get() + rbeg_).length;
  auto missing = frame_total > avail ? frame_total - avail : size_t{0};
  ensure_read_space(std::max(read_size_, missing));
  // chan_ changes only in finalize(), on this thread.
  ssize_t n;
  auto space = rcap_ - rend_;
  do {
    n = chan_->read(rbuf_.get() + rend_, space);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    // A read that filled the buffer: more was waiting, so read more at
    // once from now on (an idle connection keeps a small buffer).
    if (static_cast<size_t>(n) == space && read_size_ < read_chunk)
      read_size_ = std::min(read_size_ * 4, read_chunk);
    bump(bytes_in_, static_cast<uint64_t>(n));
    if (draining_) {
      // Closing: what the peer still sends (acknowledgements) is dropped,
      // with any descriptor that came with it.
      rbeg_ = rend_ = 0;
      while (chan_->take_fd()) {
      }
      return;
    }
    rend_ += static_cast<size_t>(n);
    deliver_frames();
    return;
  }
  if (draining_) {
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return;
    finalize(caf::none); // the peer hung up too (or the socket broke)
    return;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return;
    auto err = errno;
    close_now(err == EPROTO ? errc::protocol_error : errc::connection_closed,
              "read failed: " + chan_->error_text(err));
    return;
  }
  if (avail == 0)
    close_now(errc::connection_closed, "peer closed the connection");
  else if (avail < frame_header::size)
    close_now(errc::connection_closed,
              "peer closed mid-frame (got " + std::to_string(avail) + " of "
                + std::to_string(frame_header::size) + " header bytes)");
  else
    close_now(errc::connection_closed,
              "peer closed mid-frame (got " + std::to_string(avail) + " of "
                + std::to_string(frame_total) + " bytes)");
}

void stream_connection::deliver_frames() {
  // on_frames_end follows every run of on_frame calls, also one cut short
  // by a close (which resets handler_).
  std::shared_ptr<connection_handler> handler;
  while (!read_stopped_ && !paused_) {
    auto avail = rend_ - rbeg_;
    if (avail < frame_header::size)
      break;
    auto header = frame_header::read(rbuf_.get() + rbeg_);
    // Checked as soon as the header is in, before buffering any body.
    if (auto why = header.check_framing(options_.max_frame_body);
        !why.empty()) {
      // The run's end comes before on_closed, after which nothing may.
      if (handler)
        std::exchange(handler, nullptr)->on_frames_end(*this);
      close_now(header.magic != frame_header::magic_value
                  ? errc::protocol_error
                  : errc::frame_too_large,
                why);
      break;
    }
    auto total = frame_header::size + size_t{header.length};
    if (avail < total)
      break;
    if (!handler)
      handler = handler_;
    auto body = rbuf_.get() + rbeg_ + frame_header::size;
    if (header.kind == frame_kind::bulk) {
      if (!deliver_bulk(header, body, handler))
        break;
    } else {
      bump(frames_in_, 1);
      handler->on_frame(*this, header, body);
    }
    rbeg_ += total;
  }
  if (handler)
    handler->on_frames_end(*this);
  if (!rbuf_)
    return; // finalized by a handler's close
  if (rbeg_ == rend_) {
    rbeg_ = rend_ = 0;
    if (read_size_ == first_read_chunk) {
      // A connection whose reads never filled the buffer (an idle one, or
      // request and response) holds none between reads: a malloc per read
      // is cheap beside the read, and 4 KiB per idle connection is not.
      rbuf_.reset();
      rcap_ = 0;
    } else if (rcap_ > 4 * read_chunk) {
      // Give back the memory of a large frame once it is delivered.
      rbuf_.reset(new std::byte[read_size_]);
      rcap_ = read_size_;
    }
  }
}

bool stream_connection::deliver_bulk(
  const frame_header& header, const std::byte* body,
  std::shared_ptr<connection_handler>& handler) {
  uint64_t size = 0;
  auto code = errc::protocol_error;
  std::string why;
  bulk_in in;
  if (!bulk_) {
    why = "bulk frame on a channel that cannot carry its file";
  } else if (!read_bulk_size(body, header.length, size)) {
    why = "bulk frame with a body of " + std::to_string(header.length)
          + " bytes, not " + std::to_string(bulk_body_size);
  } else if (auto file = chan_->take_fd(); !file) {
    why = "bulk frame without its file";
  } else {
    in = bulk_in::open(std::move(file), size, options_.max_frame_body, code,
                       why);
  }
  if (!why.empty()) {
    // The run's end comes before on_closed, after which nothing may.
    std::exchange(handler, nullptr)->on_frames_end(*this);
    close_now(code, why);
    return false;
  }
  bump(frames_in_, 1);
  bump(bytes_in_, size);
  handler->on_frame(*this, in.header(), in.body());
  return true;
}

void stream_connection::ensure_read_space(size_t wanted) {
  if (rcap_ - rend_ >= wanted)
    return;
  auto avail = rend_ - rbeg_;
  if (rcap_ - avail >= wanted) {
    std::memmove(rbuf_.get(), rbuf_.get() + rbeg_, avail);
  } else {
    auto cap = avail + wanted;
    // Default-initialized: no point zeroing what read() overwrites.
    std::unique_ptr<std::byte[]> fresh{new std::byte[cap]};
    if (avail > 0)
      std::memcpy(fresh.get(), rbuf_.get() + rbeg_, avail);
    rbuf_ = std::move(fresh);
    rcap_ = cap;
  }
  rbeg_ = 0;
  rend_ = avail;
}

void stream_connection::write_queued_locked() {
  if (auto err = write_queue_locked(); err != 0) {
    write_failed_locked(make_error(errc::connection_closed,
                                   peer_name_ + ": write failed: "
                                     + chan_->error_text(err)));
    return;
  }
  update_interest_locked();
}

void stream_connection::flush_queue() {
  std::unique_lock<std::mutex> lock{mtx_};
  flush_posted_ = false;
  retry_at_ = 0; // writable, or asked to try
  if (finalized_ || !registered_)
    return;
  if (auto err = write_queue_locked(); err != 0) {
    auto reason = make_error(errc::connection_closed,
                             peer_name_ + ": write failed: "
                               + chan_->error_text(err));
    if (closing_) {
      lock.unlock();
      finalize(std::move(reason));
    } else {
      write_failed_locked(std::move(reason));
    }
    return;
  }
  if (closing_ && out_.empty()) {
    if (draining_)
      return;
    flushed_locked(lock);
    return;
  }
  update_interest_locked();
}

void stream_connection::close_now(errc code, const std::string& what) {
  finalize(make_error(code, peer_name_ + ": " + what));
}

void stream_connection::finalize(caf::error fallback) {
  std::shared_ptr<connection_handler> handler;
  caf::error reason;
  std::unique_ptr<byte_channel> chan;
  bool registered;
  reactor::token token;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (finalized_)
      return;
    finalized_ = true;
    if (!closing_) {
      closing_ = true;
      close_reason_ = fallback ? std::move(fallback)
                               : make_error(errc::connection_closed,
                                            peer_name_ + ": closed locally");
    }
    reason = close_reason_;
    read_stopped_ = true;
    registered = registered_;
    registered_ = false;
    token = token_;
    chan = std::move(chan_);
    handler = std::move(handler_);
    drop_queue_locked();
  }
  // On the loop thread remove() is immediate; the registration's reference
  // to us lives on in whoever called us until we return.
  if (registered)
    io_->remove(token);
  chan.reset();
  rbuf_.reset();
  rcap_ = rbeg_ = rend_ = 0;
  if (handler)
    handler->on_closed(*this, reason);
}

// -- requires mtx_ -------------------------------------------------------------

int stream_connection::write_queue_locked() {
  while (!out_.empty()) {
    iovec iov[max_iov];
    size_t count = 0;
    for (auto i = out_.begin(); i != out_.end() && count < max_iov; ++i) {
      // A memory file travels with the first bytes of a write.
      if (count > 0 && i->file)
        break;
      auto skip = count == 0 ? out_offset_ : size_t{0};
      iov[count].iov_base = i->bytes.data() + skip;
      iov[count].iov_len = i->bytes.size() - skip;
      ++count;
    }
    auto& front = out_.front();
    auto n = front.file ? chan_->write_fd(iov, count, front.file.get())
                        : chan_->write(iov, count);
    if (n > 0 && front.file) {
      front.file.reset(); // it went with these bytes
      file_written_locked();
      queued_bytes_.store(queued_bytes_.load(std::memory_order_relaxed)
                            - front.carried,
                          std::memory_order_relaxed);
      front.carried = 0;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        retry_at_ = queued_bytes_.load(std::memory_order_relaxed)
                    + coalesce_bytes;
        return 0;
      }
      return errno;
    }
    auto left = static_cast<size_t>(n);
    queued_bytes_.store(queued_bytes_.load(std::memory_order_relaxed) - left,
                        std::memory_order_relaxed);
    while (left > 0) {
      auto rest = out_.front().bytes.size() - out_offset_;
      if (left < rest) {
        out_offset_ += left;
        break;
      }
      left -= rest;
      out_.pop_front();
      out_offset_ = 0;
    }
  }
  return 0;
}

uint32_t stream_connection::interest_locked() const {
  uint32_t events = draining_ ? uint32_t{EPOLLIN}
                   : closing_ || paused_ ? 0u
                                         : uint32_t{EPOLLIN};
  if (!out_.empty() && !flush_posted_)
    events |= EPOLLOUT;
  if (paused_ && !closing_)
    events |= EPOLLET; // see handle_events
  return events;
}

void stream_connection::update_interest_locked() {
  if (!registered_)
    return;
  auto wanted = interest_locked();
  if (wanted == interest_)
    return;
  if (auto err = io_->modify(token_, chan_->watch(wanted & ~uint32_t{EPOLLET})
                                       | (wanted & EPOLLET))) {
    fail_locked(make_error(errc::connection_closed,
                           peer_name_ + ": cannot watch the socket: "
                             + describe(err)));
    return;
  }
  interest_ = wanted;
}

void stream_connection::fail_locked(caf::error reason) {
  if (finalized_)
    return;
  if (!closing_) {
    closing_ = true;
    close_reason_ = std::move(reason);
  }
  flush_ = false; // nothing more can be written
  read_stopped_ = true;
  drop_queue_locked();
  // Before activation, activate() finalizes. A second queued finalize() is
  // harmless: it is idempotent.
  if (registered_)
    io_->dispatch([self = shared_from_this()] { self->finalize(caf::none); });
}

void stream_connection::write_failed_locked(caf::error reason) {
  if (finalized_ || write_failed_)
    return;
  write_failed_ = true;
  write_failure_ = reason;
  drop_queue_locked();
  if (closing_ || !registered_ || paused_) {
    // A close waited for the queue to drain (or activate() will finalize);
    // or reading is paused, and the hang-up would wait for the resume.
    fail_locked(std::move(reason));
    return;
  }
  update_interest_locked();
  std::weak_ptr<stream_connection> weak = shared_from_this();
  io_->dispatch_after(close_flush_timeout, [weak, reason] {
    if (auto self = weak.lock())
      self->finalize(reason);
  });
}

void stream_connection::file_written_locked() {
  --files_pending_;
  ++files_written_;
}

void stream_connection::drop_queue_locked() {
  bump(unsent_frames_, out_.size());
  for (auto& x : out_)
    if (x.file)
      --files_pending_;
  queued_bytes_.store(0, std::memory_order_relaxed);
  out_.clear();
  out_offset_ = 0;
}

connection::traffic_counters stream_connection::traffic() const noexcept {
  traffic_counters result;
  result.frames_in = frames_in_.load(std::memory_order_relaxed);
  result.frames_out = frames_out_.load(std::memory_order_relaxed);
  result.bytes_in = bytes_in_.load(std::memory_order_relaxed);
  result.bytes_out = bytes_out_.load(std::memory_order_relaxed);
  result.queued_bytes = queued_bytes_.load(std::memory_order_relaxed);
  return result;
}

uint64_t stream_connection::unsent_frames() const noexcept {
  return unsent_frames_.load(std::memory_order_relaxed);
}

caf::error stream_connection::closed_error() const {
  return make_error(errc::connection_closed,
                    peer_name_ + ": connection is closed");
}

} // namespace relay
