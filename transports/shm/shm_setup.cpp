#include "shm/shm_setup.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/byte_order.hpp"
#include "relay/error.hpp"

namespace relay::shm_setup {

namespace {

// Sends `len` bytes with `fds` attached, non-blocking; false on failure.
bool send_with_fds(int fd, const uint8_t* data, size_t len,
                   std::initializer_list<int> fds) {
  iovec iov{const_cast<uint8_t*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  if (fds.size() > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    auto* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cm), fds.begin(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(len);
}

// Receives one message of exactly `len` bytes and its descriptors. Returns
// bytes read (0: EOF, -1: errno), and the descriptors received, owned.
ssize_t recv_with_fds(int fd, uint8_t* data, size_t len,
                      std::vector<unique_fd>& fds, bool& truncated) {
  iovec iov{data, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return n;
  for (auto* cm = CMSG_FIRSTHDR(&msg); cm != nullptr;
       cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    auto count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int x;
      std::memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      fds.emplace_back(x);
    }
  }
  truncated = (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0;
  return n;
}

} // namespace

caf::expected<result> run_client(int fd, size_t capacity,
                                 std::chrono::steady_clock::time_point deadline,
                                 const std::string& who) {
  using namespace std::chrono;
  if (!shm_layout::valid_capacity(capacity))
    return make_error(errc::invalid_argument,
                      who + ": shm ring size " + std::to_string(capacity)
                        + " is not a power of two in [4 KiB, 256 MiB]");
  auto region = create_region(capacity, errc::connect_failed, who);
  if (!region)
    return region.error();
  auto map = map_region(region->get(), capacity, errc::connect_failed, who,
                        false);
  if (!map)
    return map.error();
  for (int ring = 0; ring < 2; ++ring)
    __atomic_store_n(reinterpret_cast<uint32_t*>(
                       map->ring_header(ring, capacity)
                       + shm_layout::sleeping_offset),
                     uint32_t{1}, __ATOMIC_SEQ_CST);
  uint8_t req[request_size] = {};
  put_le32(req, magic);
  req[4] = version;
  put_le32(req + 8, static_cast<uint32_t>(capacity));
  if (!send_with_fds(fd, req, sizeof(req), {region->get()}))
    return make_errno_error(errc::connect_failed, who, errno,
                            "sending the shared memory region");
  for (;;) {
    auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0)
      return make_error(errc::handshake_timeout,
                        who + ": the server did not accept the shared "
                              "memory in time");
    pollfd p{fd, POLLIN, 0};
    auto rc = ::poll(&p, 1, poll_timeout(left));
    if (rc < 0 && errno != EINTR)
      return make_errno_error(errc::connect_failed, who, errno, "poll");
    if (rc <= 0)
      continue;
    uint8_t rep[reply_size] = {};
    std::vector<unique_fd> fds;
    bool truncated = false;
    auto n = recv_with_fds(fd, rep, sizeof(rep), fds, truncated);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (n < 0)
      return make_errno_error(errc::connect_failed, who, errno, "recvmsg");
    if (n == 0)
      return make_error(errc::connect_failed,
                        who + ": the server closed the connection during "
                              "the shared memory set-up");
    if (n != static_cast<ssize_t>(reply_size) || truncated
        || get_le32(rep) != magic)
      return make_error(errc::handshake_failed,
                        who + ": malformed shared memory set-up reply");
    if (rep[4] != version)
      return make_error(errc::version_mismatch,
                        who + ": the server speaks shm set-up version "
                          + std::to_string(rep[4]) + ", this node "
                          + std::to_string(version));
    if (rep[5] != 0)
      return make_error(errc::peer_rejected,
                        who + ": the server refused the shared memory region");
    if (!fds.empty())
      return make_error(errc::handshake_failed,
                        who + ": the server's reply carries descriptors");
    result out;
    out.map = std::move(*map);
    out.capacity = capacity;
    return out;
  }
}

setup_status server_step(int fd, result& out, const std::string& who) {
  uint8_t req[request_size] = {};
  std::vector<unique_fd> fds;
  bool truncated = false;
  auto n = recv_with_fds(fd, req, sizeof(req), fds, truncated);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return setup_status::wait(EPOLLIN);
  auto refuse = [&](errc code, const std::string& why) {
    uint8_t rep[reply_size] = {};
    put_le32(rep, magic);
    rep[4] = version;
    rep[5] = 1;
    send_with_fds(fd, rep, sizeof(rep), {});
    return setup_status::fail(make_error(code, who + ": " + why));
  };
  if (n < 0)
    return setup_status::fail(
      make_errno_error(errc::connection_closed, who, errno, "recvmsg"));
  if (n == 0)
    return setup_status::fail(make_error(
      errc::connection_closed, who + ": closed the connection during the "
                                     "shared memory set-up"));
  if (n != static_cast<ssize_t>(request_size) || truncated
      || get_le32(req) != magic)
    return refuse(errc::handshake_failed, "malformed shared memory set-up");
  if (req[4] != version)
    return refuse(errc::version_mismatch,
                  "the peer speaks shm set-up version " + std::to_string(req[4])
                    + ", this node " + std::to_string(version));
  auto capacity = size_t{get_le32(req + 8)};
  if (fds.size() != 1)
    return refuse(errc::handshake_failed,
                  "expected 1 descriptor (the region), got "
                    + std::to_string(fds.size()));
  auto map = map_region(fds[0].get(), capacity, errc::handshake_failed, who,
                        true);
  if (!map)
    return refuse(errc::handshake_failed, describe(map.error()));
  uint8_t rep[reply_size] = {};
  put_le32(rep, magic);
  rep[4] = version;
  if (!send_with_fds(fd, rep, sizeof(rep), {}))
    return setup_status::fail(make_errno_error(
      errc::connection_closed, who, errno, "sending the set-up reply"));
  out.map = std::move(*map);
  out.capacity = capacity;
  return setup_status::done();
}

} // namespace relay::shm_setup
