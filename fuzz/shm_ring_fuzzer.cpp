// The shm channel's reading and writing while a hostile peer writes
// anything into the shared region: positions (tail and head of both rings),
// flags and data. The input is a list of operations: poke a 64-bit value
// into a header field, poke bytes into a ring, read, write, take the
// peer's doorbells, hang up. Every position
// read from the region must be checked before use (EPROTO), never trusted.
//
// Seeds: fuzz/corpus/shm_ring (fuzz/make_seeds.py).

#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_support.hpp"
#include "relay/log.hpp"
#include "shm/shm_channel.hpp"
#include "shm/shm_region.hpp"

namespace {

constexpr size_t capacity = relay::shm_layout::min_capacity;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static relay::unique_fd region = [] {
    relay::set_log_sink([](relay::log_level, const std::string&) {});
    auto fd = relay::create_region(capacity, relay::errc::invalid_argument,
                                   "fuzz");
    return fd ? std::move(*fd) : relay::unique_fd{};
  }();
  auto map = relay::map_region(region.get(), capacity,
                               relay::errc::invalid_argument, "fuzz", true);
  if (!map)
    return 0;
  std::memset(map->base(), 0, map->size());
  auto* base = map->base();
  auto region_size = map->size();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)
      != 0)
    return 0;
  relay::unique_fd theirs{sv[1]};
  relay::shm_channel chan{std::move(*map), capacity, 0, 1,
                          relay::unique_fd{sv[0]}, std::chrono::nanoseconds{0}};
  relay::fuzz::reader in{data, size};
  uint8_t buf[2 * capacity];
  uint8_t op = 0;
  while (in.take(&op, 1)) {
    switch (op % 6) {
      case 0: { // a header field of either ring
        uint8_t which = 0;
        uint64_t value = 0;
        if (!in.take(&which, 1) || !in.take(&value, 8))
          return 0;
        static constexpr size_t fields[] = {
          relay::shm_layout::tail_offset, relay::shm_layout::head_offset,
          relay::shm_layout::sleeping_offset,
          relay::shm_layout::waiting_offset};
        auto ring = (which >> 2) & 1;
        auto off = ring * (relay::shm_layout::header_size + capacity)
                   + fields[which & 3];
        std::memcpy(base + off, &value, sizeof(value));
        break;
      }
      case 1: { // bytes anywhere in the region
        uint16_t off = 0;
        uint8_t n = 0;
        if (!in.take(&off, 2) || !in.take(&n, 1) || in.left < n)
          return 0;
        auto at = off % region_size;
        auto len = std::min<size_t>(n, region_size - at);
        std::memcpy(base + at, in.p, len);
        in.p += n;
        in.left -= n;
        break;
      }
      case 2: { // read
        uint16_t n = 0;
        if (!in.take(&n, 2))
          return 0;
        chan.on_ready(EPOLLIN);
        static_cast<void>(chan.read(buf, 1 + n % sizeof(buf)));
        break;
      }
      case 3: { // write
        uint16_t n = 0;
        if (!in.take(&n, 2))
          return 0;
        iovec iov{buf, 1 + n % sizeof(buf)};
        static_cast<void>(chan.write(&iov, 1));
        break;
      }
      case 5: // the peer hangs up (its end of the rendezvous socket)
        theirs.reset();
        break;
      default: { // the peer's doorbells
        char drain[256];
        while (::recv(theirs.get(), drain, sizeof(drain), MSG_DONTWAIT) > 0)
          ; // nop
        static_cast<void>(chan.poll_more());
        break;
      }
    }
  }
  return 0;
}
