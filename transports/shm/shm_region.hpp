#pragma once

// The shared memory of one shm connection: a sealed memfd holding two
// single-producer/single-consumer byte rings, one per direction.
//
//   region = [ring 0 header | ring 0 data] [ring 1 header | ring 1 data]
//   ring 0 carries client -> server, ring 1 server -> client.
//   ring header (256 bytes, one cache line per field):
//     @0   u64 tail            bytes ever written (producer)
//     @64  u64 head            bytes ever consumed (consumer)
//     @128 u32 reader_sleeping the consumer waits on its doorbell
//     @192 u32 writer_waiting  the producer waits for room
//
// The peer is untrusted: it can write anything into the region at any
// time. Each side keeps its own copy of the position it owns and checks the
// other's before use (shm_channel).

#include <cstddef>
#include <cstdint>

#include <caf/expected.hpp>

#include "common/socket_util.hpp"

namespace relay {

struct shm_layout {
  static constexpr size_t header_size = 256;
  static constexpr size_t tail_offset = 0;
  static constexpr size_t head_offset = 64;
  static constexpr size_t sleeping_offset = 128;
  static constexpr size_t waiting_offset = 192;
  static constexpr size_t min_capacity = 4096;
  static constexpr size_t max_capacity = size_t{256} << 20;

  /// Bytes of a region with two rings of `capacity` data bytes.
  static constexpr size_t region_size(size_t capacity) {
    return 2 * (header_size + capacity);
  }

  /// True for a power of two within [min_capacity, max_capacity].
  static constexpr bool valid_capacity(size_t capacity) {
    return capacity >= min_capacity && capacity <= max_capacity
           && (capacity & (capacity - 1)) == 0;
  }
};

/// A mapping of a region; unmaps on destruction. Move-only.
class shm_mapping {
public:
  shm_mapping() = default;
  shm_mapping(std::byte* base, size_t size) : base_(base), size_(size) {
    // nop
  }
  shm_mapping(shm_mapping&& other) noexcept;
  shm_mapping& operator=(shm_mapping&& other) noexcept;
  ~shm_mapping();

  std::byte* base() const noexcept {
    return base_;
  }
  size_t size() const noexcept {
    return size_;
  }

  /// Header and data of ring `index` (0 or 1) for rings of `capacity`.
  std::byte* ring_header(int index, size_t capacity) const noexcept {
    return base_ + index * (shm_layout::header_size + capacity);
  }
  std::byte* ring_data(int index, size_t capacity) const noexcept {
    return ring_header(index, capacity) + shm_layout::header_size;
  }

private:
  std::byte* base_ = nullptr;
  size_t size_ = 0;
};

/// Creates a zeroed region for rings of `capacity` bytes: a memfd (no name
/// in any file system), sealed against shrinking, growing and further
/// seals. Errors: errc `code` naming `who`.
caf::expected<unique_fd> create_region(size_t capacity, errc code,
                                       const std::string& who);

/// Checks that `fd`, received from a peer, is a memfd of exactly the size of
/// rings of `capacity` and sealed against shrinking (so it cannot be cut
/// under our mapping), then maps it. Errors: errc `code` naming `who` and
/// what is wrong.
caf::expected<shm_mapping> map_region(int fd, size_t capacity, errc code,
                                      const std::string& who,
                                      bool verify_seals);

} // namespace relay
