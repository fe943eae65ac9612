#include "shm/shm_channel.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#  include <immintrin.h>
#  define RELAY_CPU_RELAX() _mm_pause()
#else
#  define RELAY_CPU_RELAX() ((void) 0)
#endif

namespace relay {

shm_channel::shm_channel(shm_mapping map, size_t capacity, int rx, int tx,
                         unique_fd socket, std::chrono::nanoseconds spin)
  : map_(std::move(map)),
    capacity_(capacity),
    rx_header_(map_.ring_header(rx, capacity)),
    rx_data_(map_.ring_data(rx, capacity)),
    tx_header_(map_.ring_header(tx, capacity)),
    tx_data_(map_.ring_data(tx, capacity)),
    socket_(std::move(socket)),
    spin_(spin) {
  // nop
}

// -- shared memory access ----------------------------------------------------

uint64_t shm_channel::load(std::byte* header, size_t offset) const noexcept {
  return __atomic_load_n(reinterpret_cast<uint64_t*>(header + offset),
                         __ATOMIC_SEQ_CST);
}

void shm_channel::store(std::byte* header, size_t offset,
                        uint64_t value) noexcept {
  __atomic_store_n(reinterpret_cast<uint64_t*>(header + offset), value,
                   __ATOMIC_SEQ_CST);
}

uint32_t shm_channel::load_flag(std::byte* header,
                                size_t offset) const noexcept {
  return __atomic_load_n(reinterpret_cast<uint32_t*>(header + offset),
                         __ATOMIC_SEQ_CST);
}

void shm_channel::store_flag(std::byte* header, size_t offset,
                             uint32_t value) noexcept {
  __atomic_store_n(reinterpret_cast<uint32_t*>(header + offset), value,
                   __ATOMIC_SEQ_CST);
}

void shm_channel::ring() noexcept {
  char bell = 0;
  ssize_t n;
  do {
    n = ::send(socket_.get(), &bell, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  // EAGAIN: bytes the peer has not read yet ring anyway. EPIPE and the
  // like: the peer is gone; reading reports it.
}

ssize_t shm_channel::corrupt(std::string what) {
  {
    std::lock_guard<std::mutex> guard{corrupt_mtx_};
    if (corrupt_.empty())
      corrupt_ = std::move(what);
  }
  is_corrupt_ = true;
  errno = EPROTO;
  return -1;
}

std::string shm_channel::error_text(int err) const {
  if (err == EPROTO && is_corrupt_) {
    std::lock_guard<std::mutex> guard{corrupt_mtx_};
    return "shared memory ring is corrupt: " + corrupt_;
  }
  return byte_channel::error_text(err);
}

// -- reading (reactor thread) -------------------------------------------------

int64_t shm_channel::rx_available() {
  auto tail = load(rx_header_, shm_layout::tail_offset);
  // Unsigned distance: a tail behind our head wraps to a huge value.
  auto avail = tail - rx_head_;
  if (avail > capacity_) {
    corrupt("the peer's write position " + std::to_string(tail)
            + " is not within " + std::to_string(capacity_)
            + " bytes after our read position " + std::to_string(rx_head_));
    return -1;
  }
  return static_cast<int64_t>(avail);
}

ssize_t shm_channel::read(void* buf, size_t len) {
  if (is_corrupt_) {
    errno = EPROTO;
    return -1;
  }
  store_flag(rx_header_, shm_layout::sleeping_offset, 0);
  auto avail = rx_available();
  if (avail < 0)
    return -1;
  if (avail == 0) {
    if (peer_gone_) {
      if (is_corrupt_) {
        errno = EPROTO;
        return -1;
      }
      return 0;
    }
    if (arm_reader()) {
      errno = EAGAIN;
      return -1;
    }
    avail = rx_available();
    if (avail <= 0)
      return avail < 0 ? -1 : (errno = EAGAIN, -1);
  }
  auto n = std::min<size_t>(static_cast<size_t>(avail), len);
  auto pos = rx_head_ & (capacity_ - 1);
  auto first = std::min(n, capacity_ - pos);
  std::memcpy(buf, rx_data_ + pos, first);
  if (n > first)
    std::memcpy(static_cast<std::byte*>(buf) + first, rx_data_, n - first);
  rx_head_ += n;
  store(rx_header_, shm_layout::head_offset, rx_head_);
  if (load_flag(rx_header_, shm_layout::waiting_offset) != 0)
    ring(); // the writer waits for the room we just made
  // With more than fit, poll_more() brings the caller back for the rest.
  if (static_cast<size_t>(avail) == n)
    arm_reader();
  return static_cast<ssize_t>(n);
}

bool shm_channel::arm_reader() {
  store_flag(rx_header_, shm_layout::sleeping_offset, 1);
  // Dekker with the writer (store tail, then load sleeping): one of us sees
  // the other's store.
  if (load(rx_header_, shm_layout::tail_offset) != rx_head_ || peer_gone_) {
    store_flag(rx_header_, shm_layout::sleeping_offset, 0);
    return false;
  }
  return true;
}

bool shm_channel::poll_more() {
  if (is_corrupt_)
    return false;
  if (load(rx_header_, shm_layout::tail_offset) != rx_head_ || peer_gone_)
    return true;
  if (spin_.count() <= 0)
    return false;
  // Awake while spinning, so the writer need not ring.
  store_flag(rx_header_, shm_layout::sleeping_offset, 0);
  auto deadline = std::chrono::steady_clock::now() + spin_;
  for (int i = 0;; ++i) {
    if (load(rx_header_, shm_layout::tail_offset) != rx_head_ || peer_gone_)
      return true;
    // Yield rather than burn: on a CPU shared with the peer, the peer is
    // who must run for the data to come.
    ::sched_yield();
    if ((i & 7) == 7 && std::chrono::steady_clock::now() >= deadline)
      break;
  }
  return !arm_reader();
}

uint32_t shm_channel::watch(uint32_t wanted) noexcept {
  // Data and room both arrive as doorbell bytes on the socket.
  return wanted != 0 ? uint32_t{EPOLLIN} : 0u;
}

uint32_t shm_channel::on_ready(uint32_t) noexcept {
  // Take the doorbell bytes (the level-triggered socket goes quiet) before
  // looking at the rings; the end of stream means the peer is gone.
  char buf[256];
  for (;;) {
    auto n = ::recv(socket_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0)
      continue;
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
      peer_gone_ = true;
    break;
  }
  return EPOLLIN | EPOLLOUT;
}

// -- writing (under the connection's lock) --------------------------------------

ssize_t shm_channel::write(const iovec* iov, size_t count) {
  if (is_corrupt_) {
    errno = EPROTO;
    return -1;
  }
  if (peer_gone_) {
    errno = EPIPE;
    return -1;
  }
  store_flag(tx_header_, shm_layout::waiting_offset, 0);
  size_t total = 0;
  for (size_t i = 0; i < count; ++i)
    total += iov[i].iov_len;
  size_t written = 0;
  size_t vec = 0;    // iovec being copied
  size_t in_vec = 0; // bytes of it already copied
  while (written < total) {
    auto head = load(tx_header_, shm_layout::head_offset);
    if (head < tx_head_seen_ || head > tx_tail_)
      return corrupt("the peer's read position " + std::to_string(head)
                     + " is outside [" + std::to_string(tx_head_seen_) + ", "
                     + std::to_string(tx_tail_) + "]");
    tx_head_seen_ = head;
    auto room = capacity_ - (tx_tail_ - head);
    if (room == 0) {
      // Full: ask for a ring when room appears, then look once more.
      store_flag(tx_header_, shm_layout::waiting_offset, 1);
      if (load(tx_header_, shm_layout::head_offset) == tx_head_seen_)
        break;
      store_flag(tx_header_, shm_layout::waiting_offset, 0);
      continue;
    }
    auto n = std::min(room, total - written);
    for (size_t copied = 0; copied < n;) {
      auto src = static_cast<const std::byte*>(iov[vec].iov_base) + in_vec;
      auto chunk = std::min(iov[vec].iov_len - in_vec, n - copied);
      auto pos = (tx_tail_ + copied) & (capacity_ - 1);
      auto first = std::min(chunk, capacity_ - pos);
      std::memcpy(tx_data_ + pos, src, first);
      if (chunk > first)
        std::memcpy(tx_data_, src + first, chunk - first);
      copied += chunk;
      in_vec += chunk;
      if (in_vec == iov[vec].iov_len) {
        ++vec;
        in_vec = 0;
      }
    }
    tx_tail_ += n;
    written += n;
    // Dekker with the reader (store sleeping, then load tail).
    store(tx_header_, shm_layout::tail_offset, tx_tail_);
    if (load_flag(tx_header_, shm_layout::sleeping_offset) != 0)
      ring();
  }
  if (written == 0) {
    errno = EAGAIN;
    return -1;
  }
  return static_cast<ssize_t>(written);
}

} // namespace relay
