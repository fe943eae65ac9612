#pragma once

// What stream_connection reads from and writes to: a socket, a pair of
// shared-memory rings with doorbells, or a pair of POSIX message queues.
// Non-blocking, socket-like semantics.

#include <cstddef>
#include <cstdint>
#include <vector>
#include <memory>
#include <string>

#include <sys/uio.h>
#include <sys/types.h>

#include "common/socket_util.hpp"

namespace relay {

/// A non-blocking, reliable, ordered byte stream to one peer.
///
/// Thread rules: read() and wake() run on the reactor thread only; write()
/// runs under the owning connection's lock (one writer at a time) on any
/// thread. fd() is constant.
class byte_channel {
public:
  virtual ~byte_channel();

  /// The descriptor the reactor watches for this channel.
  virtual int fd() const noexcept = 0;

  /// Like ::read: bytes read (> 0), 0 at the end of the stream, or -1 with
  /// errno (EAGAIN: nothing now; the reactor reports readiness later).
  virtual ssize_t read(void* buf, size_t len) = 0;

  /// Like ::sendmsg on a non-blocking socket: bytes written (>= 0, maybe
  /// fewer than offered), or -1 with errno (EAGAIN: no room now; the
  /// reactor reports writability later).
  virtual ssize_t write(const iovec* iov, size_t count) = 0;

  /// The epoll events to watch on fd() for `wanted` (EPOLLIN, EPOLLOUT).
  /// Called whenever the connection's interest changes, under the owning
  /// connection's lock; a channel whose fd() stands for several
  /// descriptors (mq: an epoll set of two queues and a pidfd) updates that
  /// set here.
  virtual uint32_t watch(uint32_t wanted) noexcept {
    return wanted;
  }

  /// Called first for every readiness event; returns the events to act on
  /// (a channel whose one descriptor signals both directions turns any
  /// event into EPOLLIN | EPOLLOUT).
  virtual uint32_t on_ready(uint32_t events) noexcept {
    return events;
  }

  /// Called after a read that delivered data, before the reactor waits
  /// again: true if more may be read right away (the channel may watch for
  /// it briefly). Sockets: false (the reactor reports more).
  virtual bool poll_more() {
    return false;
  }

  /// True if a write() costs a system call or a wake-up of the peer, so
  /// that a sender in a loop gains from gathering its frames into one
  /// write (stream_connection::coalesce_window). Sockets and queues: true;
  /// shm, whose write is a copy into the ring: false. Immutable.
  virtual bool coalesce_writes() const noexcept {
    return true;
  }

  /// True if the channel carries file descriptors beside its bytes (a Unix
  /// socket), so that large frames can travel as sealed memory files (see
  /// bulk_frame.hpp). Immutable. The default is false.
  virtual bool passes_fds() const noexcept {
    return false;
  }

  /// Like write(), with descriptor `fd` attached: the peer's take_fd()
  /// returns it no later than when the first of these bytes was read. The
  /// channel duplicates what it sends; the caller keeps `fd`. Only where
  /// passes_fds(). Under the owning connection's lock.
  virtual ssize_t write_fd(const iovec* iov, size_t count, int fd);

  /// True if the peer has read everything written so far, so that none of
  /// the descriptors sent is still in flight (stream_connection bounds the
  /// memory files in flight with it). Under the owning connection's lock.
  /// Channels that pass descriptors override it; the default says true.
  virtual bool peer_caught_up() {
    return true;
  }

  /// The oldest descriptor received and not yet taken, or an empty one
  /// (none arrived: a peer that sent a bulk frame without its file).
  /// Descriptors not taken close with the channel. Reactor thread.
  virtual unique_fd take_fd() {
    return unique_fd{};
  }

  /// True if the channel already took bytes from its descriptor that read()
  /// has not returned yet (TLS reads ahead), so that the reactor will not
  /// report them: the connection reads once when it starts. Reactor thread.
  virtual bool has_buffered_input() {
    return false;
  }

  /// Ends the write direction: the peer reads the end of the stream after
  /// everything written so far (a FIN; TLS sends its close_notify first),
  /// while this side can still read. Returns false if the channel cannot
  /// (the default), and then a connection cannot linger on close. Called
  /// under the owning connection's lock, once, after the last write.
  virtual bool shutdown_write() {
    return false;
  }

  /// Text for error `err` of read() or write().
  virtual std::string error_text(int err) const;
};

/// A connected stream socket, owned. With `pass_fds` (Unix sockets only),
/// it reads with recvmsg and keeps received descriptors (SCM_RIGHTS,
/// close-on-exec) for take_fd, at most max_pending_fds of them: a peer
/// that sends more, or more in one message than fit, fails read() with
/// EPROTO and error_text() says why.
class socket_channel : public byte_channel {
public:
  /// Descriptors kept until taken.
  static constexpr size_t max_pending_fds = 16;

  explicit socket_channel(unique_fd fd, bool pass_fds = false)
    : fd_(std::move(fd)), pass_fds_(pass_fds) {
    // nop
  }

  bool passes_fds() const noexcept override {
    return pass_fds_;
  }

  ssize_t write_fd(const iovec* iov, size_t count, int fd) override;

  /// Nothing unread in the socket's send queue (SIOCOUTQ).
  bool peer_caught_up() override;

  unique_fd take_fd() override;

  std::string error_text(int err) const override;

  int fd() const noexcept override {
    return fd_.get();
  }

  ssize_t read(void* buf, size_t len) override;

  ssize_t write(const iovec* iov, size_t count) override;

  bool shutdown_write() override;

private:
  ssize_t read_with_fds(void* buf, size_t len);

  unique_fd fd_;
  const bool pass_fds_;
  // Received, not taken, oldest first (reactor thread). A vector: at most
  // max_pending_fds, and an empty deque would cost 576 bytes per channel.
  std::vector<unique_fd> fds_;
  std::string violation_;     // why read() failed with EPROTO
};

} // namespace relay
