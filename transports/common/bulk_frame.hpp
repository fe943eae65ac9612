#pragma once

// Large frames as sealed memory files (memfd) passed beside a small `bulk`
// frame, for channels that carry file descriptors (Unix sockets: SCM_RIGHTS).
// The payload then crosses the process boundary without passing through the
// socket: the sender copies it once into the memfd (write(2), which fills
// fresh pages without zeroing them), the receiver maps the sealed file
// read-only and decodes it in place. This is the memory-mapped-file way of
// the classic IPC table, made safe against a peer that keeps the file:
//
//   sender:   memfd_create(MFD_CLOEXEC | MFD_ALLOW_SEALING), write the whole
//             frame (header and body), seal F_SEAL_WRITE | F_SEAL_SHRINK |
//             F_SEAL_GROW | F_SEAL_SEAL, send a bulk frame whose body is the
//             u64 size of the file, the descriptor attached to its bytes;
//   receiver: take the oldest descriptor received, check that it is a
//             regular file with at least those seals and exactly that size,
//             map it PROT_READ, check the frame in it like any frame
//             (check_framing, the size in its header), deliver it, unmap.
//
// The seals mean that nobody, the sender included, can change or truncate
// the file once the receiver looks at it, so what was checked is what is
// decoded and a mapped read cannot fault (SIGBUS) on a truncated file.
// See docs/wire-protocol.md ("Bulk frames").

#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>

#include "common/socket_util.hpp"
#include "relay/error.hpp"
#include "relay/frame.hpp"
#include "relay/transport.hpp"

namespace relay {

/// Body size of a bulk frame: the u64 size of the file, little endian.
constexpr size_t bulk_body_size = 8;

/// A frame and the memfd that holds its contents, ready to send.
struct bulk_out {
  frame_buffer frame; ///< the bulk frame itself (header and 8-byte body)
  unique_fd file;     ///< the sealed memfd; attach to the frame's bytes
};

/// Copies `frame` (a complete frame, checked by the caller) into a new
/// sealed memfd. Errors: errc::connection_closed style, naming `peer` and
/// the failing call (out of memory, descriptor limit).
caf::expected<bulk_out> make_bulk(const frame_buffer& frame,
                                  const std::string& peer);

/// A received bulk file, validated and mapped read-only. Move-only; unmaps
/// and closes when destroyed.
class bulk_in {
public:
  /// Checks `file` against the size `size` announced by a bulk frame and
  /// the bound `max_body` on the frame it holds, and maps it. Errors
  /// (human-readable reasons, empty on success): not a regular file, not
  /// sealed against writing, shrinking and growing, a size other than
  /// announced, a frame whose header fails check_framing or whose length
  /// disagrees with the file, a bulk frame inside a bulk frame, or a failed
  /// mmap.
  /// On failure `error` says why and `code` is errc::frame_too_large for
  /// a frame over `max_body`, else errc::protocol_error.
  static bulk_in open(unique_fd file, uint64_t size, uint32_t max_body,
                      errc& code, std::string& error);

  bulk_in() = default;
  bulk_in(bulk_in&& other) noexcept;
  bulk_in& operator=(bulk_in&& other) noexcept;
  bulk_in(const bulk_in&) = delete;
  bulk_in& operator=(const bulk_in&) = delete;
  ~bulk_in();

  /// The header of the frame in the file (valid after a successful open).
  const frame_header& header() const noexcept {
    return header_;
  }

  /// Its `header().length` body bytes, valid while this object lives.
  const std::byte* body() const noexcept {
    return base_ + frame_header::size;
  }

private:
  const std::byte* base_ = nullptr;
  size_t size_ = 0;
  frame_header header_;
};

/// Reads the size from a bulk frame's body of `length` bytes; false if the
/// body is malformed (not exactly bulk_body_size bytes).
bool read_bulk_size(const std::byte* body, uint32_t length, uint64_t& size);

} // namespace relay
