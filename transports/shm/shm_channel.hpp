#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "common/byte_channel.hpp"
#include "common/reactor.hpp"
#include "shm/shm_region.hpp"

namespace relay {

/// A byte_channel over two shared-memory rings (see shm_region.hpp).
///
/// Writing copies into the tx ring and makes a system call only when the
/// peer said it sleeps: then it rings the peer's doorbell, one byte on the
/// rendezvous socket. Reading copies out of the rx ring. Before the reactor
/// goes back to sleep, poll_more() watches the ring for at most `spin`
/// (yielding the CPU), then sets reader_sleeping and checks once more, so no
/// doorbell is lost.
///
/// The socket is the one descriptor the reactor watches: doorbell bytes
/// (for data and for room alike) and its end of stream (the peer is gone)
/// both make it readable. It is a socket rather than an eventfd because
/// the peer shares an eventfd's open file description and could make our
/// reads and writes on it blocking; send and recv take MSG_DONTWAIT per
/// call, whatever the peer does.
///
/// Every position read from shared memory is checked against our own copy
/// and the capacity; a violation fails read()/write() with EPROTO and
/// error_text() says what was wrong.
class shm_channel : public byte_channel {
public:
  /// `rx`/`tx` are ring indexes into `map`; `socket` is the rendezvous
  /// socket (non-blocking).
  shm_channel(shm_mapping map, size_t capacity, int rx, int tx,
              unique_fd socket, std::chrono::nanoseconds spin);

  int fd() const noexcept override {
    return socket_.get();
  }

  ssize_t read(void* buf, size_t len) override;

  ssize_t write(const iovec* iov, size_t count) override;

  uint32_t watch(uint32_t wanted) noexcept override;

  uint32_t on_ready(uint32_t events) noexcept override;

  bool poll_more() override;

  // A write is a copy into the ring (and a doorbell only for a sleeping
  // reader): nothing to gather.
  bool coalesce_writes() const noexcept override {
    return false;
  }

  std::string error_text(int err) const override;

private:
  uint64_t load(std::byte* header, size_t offset) const noexcept;
  void store(std::byte* header, size_t offset, uint64_t value) noexcept;
  uint32_t load_flag(std::byte* header, size_t offset) const noexcept;
  void store_flag(std::byte* header, size_t offset, uint32_t value) noexcept;

  // Available bytes in rx, or -1 (errno EPROTO) if the peer's tail is bad.
  int64_t rx_available();
  // Sets reader_sleeping, then checks again; false if data came meanwhile.
  bool arm_reader();
  // Rings the peer's doorbell.
  void ring() noexcept;
  ssize_t corrupt(std::string what);

  shm_mapping map_;
  const size_t capacity_;
  std::byte* rx_header_;
  std::byte* rx_data_;
  std::byte* tx_header_;
  std::byte* tx_data_;
  unique_fd socket_;
  const std::chrono::nanoseconds spin_;

  // Our own positions: the truth, whatever shared memory says.
  uint64_t rx_head_ = 0; // reactor thread
  uint64_t tx_tail_ = 0; // writer (under the connection's lock)
  uint64_t tx_head_seen_ = 0;

  std::atomic<bool> peer_gone_{false};
  mutable std::mutex corrupt_mtx_;
  std::string corrupt_; // guarded by corrupt_mtx_
  std::atomic<bool> is_corrupt_{false};
};

} // namespace relay
