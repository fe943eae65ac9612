#pragma once

// The hand-over of a region over the rendezvous socket:
//
//   client -> server  16 bytes: "RLYS" u32, version u8 = 1, 3 bytes 0,
//                     ring capacity u32, u32 0
//                     SCM_RIGHTS: the region's memfd, the client's eventfd
//   server -> client  8 bytes: "RLYS" u32, version u8, status u8 (0 ok,
//                     1 refused), u16 0
//                     SCM_RIGHTS (if ok): the server's eventfd
//
// After that the socket carries nothing; it closing means the peer is gone.

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

/// What a finished set-up leaves: the mapping, the ring capacity, our
/// eventfd and the peer's.
struct result {
  shm_mapping map;
  size_t capacity = 0;
  unique_fd own_bell;
  unique_fd peer_bell;
};

/// Client side, blocking until `deadline`: creates the region and our
/// eventfd, hands them over on connected socket `fd` and waits for the
/// server's eventfd. Errors (errc::connect_failed, handshake_failed,
/// handshake_timeout) name `who`.
caf::expected<result> run_client(int fd, size_t capacity,
                                 std::chrono::steady_clock::time_point deadline,
                                 const std::string& who);

/// Server side as a setup_sessions step: receives and checks the request,
/// maps the region, answers with our eventfd, and fills `out`.
setup_status server_step(int fd, result& out, const std::string& who);

} // namespace relay::shm_setup
