#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace relay {

/// Kinds of frame on the wire. See docs/wire-protocol.md for each body.
enum class frame_kind : uint8_t {
  hello = 1,         ///< handshake: identity and protocol version
  reject = 2,        ///< handshake refused; body says why, then the peer closes
  message = 3,       ///< an actor message (also responses and errors)
  monitor = 4,       ///< "tell me when actor X ends"
  down = 5,          ///< actor X ended with reason R
  link = 6,          ///< link a remote actor with a local one
  unlink = 7,        ///< remove such a link
  lookup = 8,        ///< resolve a published name
  lookup_reply = 9,  ///< answer to lookup
  heartbeat = 10,    ///< empty; keeps an idle connection known to be alive
  retire = 11,       ///< empty; the sender's last frame on a duplicate
                     ///< connection (see docs/wire-protocol.md)
  ack = 12,          ///< u64: sequenced frames dispatched so far (session)
  resume = 13,       ///< u64: the same, once, answering a resuming hello
  goodbye = 14,      ///< empty; the sender closes on purpose: do not resume
  probe = 15,        ///< u64: a token the receiver echoes (round-trip time)
  probe_reply = 16,  ///< u64: the token of a probe, echoed
  bulk = 17,         ///< u64: size of a sealed memfd passed beside the frame
                     ///< that holds the real frame; transport-internal,
                     ///< never delivered to a handler (see bulk_frame.hpp)
};

/// Highest frame kind the framework itself handles (bulk, above it, is
/// consumed by the transports that pass descriptors). Kinds up to
/// first_module_frame_kind - 1 are reserved for the framework; modules
/// register kinds from first_module_frame_kind to 255 (see frame_handler.hpp).
constexpr uint8_t max_frame_kind = 16;

/// First frame kind a module may register.
constexpr uint8_t first_module_frame_kind = 64;

/// Fixed 12-byte header in front of every frame, little endian:
///
///   offset 0  u32 magic   0x59414c52 ("RLAY" as bytes)
///   offset 4  u8  version protocol version of the sender
///   offset 5  u8  kind    a frame_kind
///   offset 6  u16 flags   reserved, must be 0 (the framework closes a
///                         connection that sends anything else)
///   offset 8  u32 length  number of body bytes that follow the header
///
/// The header is shared by every transport so that stream transports can cut
/// a byte stream into frames; its meaning beyond the length is checked by the
/// framework (version, kind) so that a version mismatch becomes a clear
/// handshake error instead of a framing error.
struct frame_header {
  static constexpr size_t size = 12;
  static constexpr uint32_t magic_value = 0x59414c52; // "RLAY"
  static constexpr uint8_t current_version = 1;
  /// Default bound on the body length of one frame.
  static constexpr uint32_t default_max_body = 16u * 1024u * 1024u;

  uint32_t magic = magic_value;
  uint8_t version = current_version;
  frame_kind kind = frame_kind::message;
  uint16_t flags = 0;
  uint32_t length = 0;

  /// Writes the header into `out`, which must hold `size` bytes.
  void write(std::byte* out) const noexcept;

  /// Reads a header from `in` (exactly `size` bytes) without checking it.
  static frame_header read(const std::byte* in) noexcept;

  /// Checks what a transport must check before buffering the body: the magic
  /// and the length bound. Returns an empty string if acceptable, otherwise a
  /// human-readable reason ("bad magic 0x...", "frame of N bytes exceeds the
  /// bound of M bytes").
  std::string check_framing(uint32_t max_body) const;
};

inline void frame_header::write(std::byte* out) const noexcept {
  auto put = [&out](uint64_t v, int n) {
    for (int i = 0; i < n; ++i)
      *out++ = static_cast<std::byte>((v >> (8 * i)) & 0xff);
  };
  put(magic, 4);
  put(version, 1);
  put(static_cast<uint8_t>(kind), 1);
  put(flags, 2);
  put(length, 4);
}

inline frame_header frame_header::read(const std::byte* in) noexcept {
  auto get = [&in](int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i)
      v |= static_cast<uint64_t>(std::to_integer<uint8_t>(*in++)) << (8 * i);
    return v;
  };
  frame_header h;
  h.magic = static_cast<uint32_t>(get(4));
  h.version = static_cast<uint8_t>(get(1));
  h.kind = static_cast<frame_kind>(get(1));
  h.flags = static_cast<uint16_t>(get(2));
  h.length = static_cast<uint32_t>(get(4));
  return h;
}

} // namespace relay
