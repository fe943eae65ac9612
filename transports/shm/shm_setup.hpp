#pragma once

// The hand-over of a region over the rendezvous socket:
//
//   client -> server  16 bytes: "RLYS" u32, version u8 = 1, 3 bytes 0,
//                     ring capacity u32, u32 0
//                     SCM_RIGHTS: the region's memfd
//   server -> client  8 bytes: "RLYS" u32, version u8, status u8 (0 ok,
//                     1 refused), u16 0
//
// After that the socket carries doorbell bytes (see shm_channel.hpp); its
// end of stream means the peer is gone.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>

#include "common/setup_session.hpp"
#include "common/socket_util.hpp"
#include "shm/shm_region.hpp"

namespace relay::shm_setup {

constexpr uint32_t magic = 0x53594c52; // "RLYS" read as little-endian u32
constexpr uint8_t version = 1;
constexpr size_t request_size = 16;
constexpr size_t reply_size = 8;

/// What a finished set-up leaves: the mapping and the ring capacity.
struct result {
  shm_mapping map;
  size_t capacity = 0;
};

/// Client side, blocking until `deadline`: creates the region (both
/// readers marked asleep, so that the first write rings), hands it over on
/// connected socket `fd` and waits for the answer. Errors (errc::connect_failed, handshake_failed,
/// handshake_timeout) name `who`.
caf::expected<result> run_client(int fd, size_t capacity,
                                 std::chrono::steady_clock::time_point deadline,
                                 const std::string& who);

/// Server side as a setup_sessions step: receives and checks the request,
/// maps the region, answers, and fills `out`.
setup_status server_step(int fd, result& out, const std::string& who);

} // namespace relay::shm_setup
