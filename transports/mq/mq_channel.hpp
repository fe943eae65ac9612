#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/byte_channel.hpp"
#include "common/reactor.hpp"

namespace relay {

/// A byte_channel over two POSIX message queues, one per direction.
///
/// Writing cuts the byte stream into messages of at most the tx queue's
/// message size (priority 0) and sends them without blocking; a full queue
/// is EAGAIN. Reading takes whole messages (straight into the caller's
/// buffer when it has room for one, else through a staging buffer). An
/// empty message is the end of the stream (shutdown_write() sends it).
///
/// A queue has no end of stream of its own, so the peer's death comes from
/// a pidfd of its process: once it is readable and the rx queue is empty,
/// read() fails with ECONNRESET ("the peer's process exited ..."). Peers in the same process (tests) have no pidfd and
/// rely on the empty message; the node's heartbeat catches anything else.
///
/// fd() is an epoll set of its own holding the rx queue (EPOLLIN while the
/// connection reads), the tx queue (EPOLLOUT only while it waits for room,
/// else a queue with room would wake the reactor forever) and the pidfd.
///
/// Every message is validated: a priority other than 0 or data after the
/// end of the stream fails read() with EPROTO, and error_text() says why.
///
/// Thread rules: as byte_channel. The destructor may run on any thread; if
/// the end-of-stream message finds the queue full, it retries on `io` for at
/// most fin_retry_bound.
class mq_channel : public byte_channel {
public:
  static constexpr std::chrono::milliseconds fin_retry_bound{5000};

  /// `rx`/`tx`: open, non-blocking, checked queues; `peer`: a pidfd of the
  /// peer's process, or empty when it is this process. Errors
  /// (errc::connection_closed naming `who`): the epoll set cannot be made.
  static caf::expected<std::unique_ptr<mq_channel>>
  make(unique_fd rx, unique_fd tx, unique_fd peer, std::weak_ptr<reactor> io,
       const std::string& who);

  ~mq_channel() override;

  int fd() const noexcept override {
    return set_.get();
  }

  ssize_t read(void* buf, size_t len) override;

  ssize_t write(const iovec* iov, size_t count) override;

  uint32_t watch(uint32_t wanted) noexcept override;

  uint32_t on_ready(uint32_t events) noexcept override;

  /// True while read() holds what the queue no longer shows: the rest of a
  /// staged message, or the end of the stream taken with the last data.
  bool poll_more() override;

  /// Same as poll_more(): the connection reads once when it starts.
  bool has_buffered_input() override {
    return poll_more();
  }

  bool shutdown_write() override;

  std::string error_text(int err) const override;

private:
  mq_channel(unique_fd rx, unique_fd tx, unique_fd peer, unique_fd set,
             size_t rx_size, size_t tx_size, std::weak_ptr<reactor> io);

  ssize_t protocol_violation(std::string what);

  unique_fd rx_;
  unique_fd tx_;
  unique_fd peer_;
  unique_fd set_;
  const size_t rx_size_; // message size of rx
  const size_t tx_size_; // message size of tx
  std::weak_ptr<reactor> io_;

  // Reactor thread.
  std::vector<char> rx_stage_; // a message read() had no room for
  size_t stage_begin_ = 0;
  size_t stage_end_ = 0;
  bool end_received_ = false;
  bool end_reported_ = false;

  // Under the connection's lock.
  std::vector<char> tx_stage_;
  uint32_t watched_ = 0; // the queues' interest in set_ (EPOLLIN, EPOLLOUT)
  bool end_sent_ = false;

  std::atomic<bool> peer_gone_{false};
  mutable std::mutex violation_mtx_;
  std::string violation_; // guarded by violation_mtx_
  std::atomic<bool> violated_{false};
};

} // namespace relay
