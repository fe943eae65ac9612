#pragma once

// Little-endian integers in the transports' own handshakes (shm set-up,
// tcp authentication, mq rendezvous). Frames use frame_header.

#include <cstdint>

namespace relay {

/// Writes `x` little-endian into p[0..3].
inline void put_le32(uint8_t* p, uint32_t x) noexcept {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<uint8_t>(x >> (8 * i));
}

/// Reads a little-endian u32 from p[0..3].
inline uint32_t get_le32(const uint8_t* p) noexcept {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16
         | uint32_t{p[3]} << 24;
}

} // namespace relay
