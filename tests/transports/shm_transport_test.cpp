// What only the shm transport does: a peer that corrupts the shared rings
// or hands over a bad region is closed with a clear reason, never a crash,
// and the listener goes on serving. What every transport must do is in
// conformance_test.cpp. Nothing sleeps.

#include "shm/shm_transport.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "common/reactor.hpp"
#include "shm/shm_region.hpp"
#include "shm/shm_setup.hpp"
#include "test_support.hpp"
#include "transport_test_support.hpp"
#include "uds/uds_address.hpp"
#include "uds/uds_connector.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

uint64_t* field(std::byte* header, size_t offset) {
  return reinterpret_cast<uint64_t*>(header + offset);
}

class shm_transport_test : public ::testing::Test {
protected:
  void SetUp() override {
    io_ = std::make_shared<reactor>();
    transport_options opts;
    opts.handshake_timeout = 2000ms;
    transport_ = std::make_unique<shm_transport>(io_, opts);
    uri_ = "shm://" + dir_.path() + "/s.sock";
    auto l = transport_->listen(ep(uri_), accepted_.callback());
    ASSERT_TRUE(l) << str(l.error());
    listener_ = std::move(*l);
  }

  // A client that keeps its mapping, to scribble on it: the rendezvous
  // socket and the set-up result.
  struct evil_client {
    unique_fd socket;
    shm_setup::result setup;
  };

  evil_client connect_evil() {
    evil_client c;
    auto addr = uds_address::parse(endpoint{"uds", ep(uri_).rest, uri_});
    auto sock = uds_connect_socket(*addr, transport_options{});
    EXPECT_TRUE(sock) << str(sock.error());
    if (!sock)
      return c;
    auto setup = shm_setup::run_client(sock->fd.get(), 4096,
                                       std::chrono::steady_clock::now() + 10s,
                                       uri_);
    EXPECT_TRUE(setup) << str(setup.error());
    if (!setup)
      return c;
    c.socket = std::move(sock->fd);
    c.setup = std::move(*setup);
    return c;
  }

  // The listener's end of the last connection, started with a recorder.
  std::pair<connection_ptr, std::shared_ptr<recorder>> accept_started() {
    auto server = accepted_.pop();
    auto rec = std::make_shared<recorder>(io_);
    if (server)
      server->start(rec);
    return {server, rec};
  }

  // Rings the listener's doorbell: a byte on the rendezvous socket.
  void ring(const evil_client& c) {
    char bell = 0;
    ASSERT_EQ(::send(c.socket.get(), &bell, 1, MSG_NOSIGNAL), 1);
  }


  temp_dir dir_;
  std::shared_ptr<reactor> io_;
  std::unique_ptr<shm_transport> transport_;
  std::string uri_;
  accept_queue accepted_;
  std::unique_ptr<acceptor> listener_;
  log_capture logs_;
};

} // namespace

TEST_F(shm_transport_test, write_position_beyond_the_ring_closes_as_corrupt) {
  auto evil = connect_evil();
  ASSERT_TRUE(evil.socket);
  auto [server, rec] = accept_started();
  ASSERT_NE(server, nullptr);
  // Ring 0 carries client -> server: claim far more data than fits.
  auto* header = evil.setup.map.ring_header(0, evil.setup.capacity);
  __atomic_store_n(field(header, shm_layout::tail_offset), uint64_t{1} << 40,
                   __ATOMIC_SEQ_CST);
  ring(evil);
  ASSERT_TRUE(rec->wait_closed());
  auto reason = str(rec->reason());
  EXPECT_TRUE(is(rec->reason(), errc::protocol_error)) << reason;
  EXPECT_TRUE(contains(reason, "shared memory ring is corrupt")) << reason;
  EXPECT_TRUE(contains(reason, "write position 1099511627776")) << reason;
  EXPECT_TRUE(contains(reason, uri_)) << reason;
  EXPECT_TRUE(rec->frames().empty());
  expect_serves_a_good_client(*transport_, uri_, accepted_, io_);
}

TEST_F(shm_transport_test, garbage_in_the_ring_closes_with_protocol_error) {
  auto evil = connect_evil();
  ASSERT_TRUE(evil.socket);
  auto [server, rec] = accept_started();
  ASSERT_NE(server, nullptr);
  auto* header = evil.setup.map.ring_header(0, evil.setup.capacity);
  auto* data = evil.setup.map.ring_data(0, evil.setup.capacity);
  std::memset(data, 0xAB, 100);
  __atomic_store_n(field(header, shm_layout::tail_offset), uint64_t{100},
                   __ATOMIC_SEQ_CST);
  ring(evil);
  ASSERT_TRUE(rec->wait_closed());
  EXPECT_TRUE(is(rec->reason(), errc::protocol_error)) << str(rec->reason());
  EXPECT_TRUE(contains(str(rec->reason()), "bad magic")) << str(rec->reason());
  expect_serves_a_good_client(*transport_, uri_, accepted_, io_);
}

TEST_F(shm_transport_test, read_position_out_of_range_closes_the_writer) {
  auto evil = connect_evil();
  ASSERT_TRUE(evil.socket);
  auto [server, rec] = accept_started();
  ASSERT_NE(server, nullptr);
  // Ring 1 carries server -> client; the client owns its read position and
  // claims to have consumed bytes the server never wrote.
  auto* header = evil.setup.map.ring_header(1, evil.setup.capacity);
  __atomic_store_n(field(header, shm_layout::head_offset), uint64_t{777},
                   __ATOMIC_SEQ_CST);
  auto err = server->send(make_frame("hello"));
  ASSERT_TRUE(rec->wait_closed());
  auto reason = str(rec->reason());
  EXPECT_TRUE(contains(reason, "shared memory ring is corrupt")) << reason;
  EXPECT_TRUE(contains(reason, "read position 777")) << reason;
  EXPECT_TRUE(err) << "send into a corrupt ring reported success";
  expect_serves_a_good_client(*transport_, uri_, accepted_, io_);
}

TEST_F(shm_transport_test, peer_closing_its_socket_ends_the_connection_after_the_data) {
  auto evil = connect_evil();
  ASSERT_TRUE(evil.socket);
  auto [server, rec] = accept_started();
  ASSERT_NE(server, nullptr);
  // A whole frame in the ring, then the peer goes away at once.
  auto frame = make_frame("last words");
  auto* header = evil.setup.map.ring_header(0, evil.setup.capacity);
  std::memcpy(evil.setup.map.ring_data(0, evil.setup.capacity), frame.data(),
              frame.size());
  __atomic_store_n(field(header, shm_layout::tail_offset),
                   uint64_t{frame.size()}, __ATOMIC_SEQ_CST);
  evil.socket.reset();
  ASSERT_TRUE(rec->wait_closed());
  ASSERT_EQ(rec->frames().size(), 1u);
  EXPECT_EQ(text_of(rec->frames()[0].body), "last words");
  EXPECT_TRUE(contains(str(rec->reason()), "peer closed the connection"))
    << str(rec->reason());
}

// -- bad set-ups ------------------------------------------------------------------

namespace {

// Sends a set-up request with `fds` attached on a fresh rendezvous socket.
unique_fd send_request(const std::string& uri, uint32_t capacity,
                       std::vector<int> fds) {
  auto addr = uds_address::parse(endpoint{"uds", uri.substr(4), uri});
  auto sock = uds_connect_socket(*addr, transport_options{});
  if (!sock)
    return unique_fd{};
  uint8_t req[shm_setup::request_size] = {};
  uint32_t magic = shm_setup::magic;
  std::memcpy(req, &magic, 4);
  req[4] = shm_setup::version;
  std::memcpy(req + 8, &capacity, 4);
  iovec iov{req, sizeof(req)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    auto* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
  }
  if (::sendmsg(sock->fd.get(), &msg, MSG_NOSIGNAL) != sizeof(req))
    return unique_fd{};
  return std::move(sock->fd);
}

// True once the listener answered "refused" (or just hung up).
bool refused(int fd) {
  uint8_t rep[shm_setup::reply_size] = {};
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 10000) <= 0)
    return false;
  auto n = ::recv(fd, rep, sizeof(rep), 0);
  return n == 0 || (n == sizeof(rep) && rep[5] == 1);
}

} // namespace

TEST_F(shm_transport_test, unsealed_or_wrong_sized_regions_are_refused) {
  // A memfd without seals: the peer could shrink it under our mapping.
  unique_fd unsealed{::memfd_create("x", MFD_CLOEXEC)};
  ASSERT_EQ(::ftruncate(unsealed.get(), shm_layout::region_size(4096)), 0);
  auto a = send_request(uri_, 4096, {unsealed.get()});
  ASSERT_TRUE(a);
  EXPECT_TRUE(refused(a.get()));
  EXPECT_TRUE(logs_.wait_for({"not sealed against shrinking"})) << logs_.dump();
  // A sealed region smaller than it claims.
  auto small = create_region(4096, errc::connect_failed, "test");
  ASSERT_TRUE(small);
  auto b = send_request(uri_, 8192, {small->get()});
  ASSERT_TRUE(b);
  EXPECT_TRUE(refused(b.get()));
  EXPECT_TRUE(logs_.wait_for({"expected 16896"})) << logs_.dump();
  // Two descriptors where one is expected.
  auto region = create_region(4096, errc::connect_failed, "test");
  ASSERT_TRUE(region);
  auto c = send_request(uri_, 4096, {region->get(), region->get()});
  ASSERT_TRUE(c);
  EXPECT_TRUE(refused(c.get()));
  EXPECT_TRUE(logs_.wait_for({"expected 1 descriptor (the region), got 2"}))
    << logs_.dump();
  // No descriptors at all, and a capacity that is no power of two.
  auto d = send_request(uri_, 4096, {});
  ASSERT_TRUE(d);
  EXPECT_TRUE(refused(d.get()));
  auto e = send_request(uri_, 5000, {region->get()});
  ASSERT_TRUE(e);
  EXPECT_TRUE(refused(e.get()));
  EXPECT_TRUE(logs_.wait_for({"invalid ring capacity 5000"})) << logs_.dump();
  EXPECT_EQ(transport_->rejected_peers(), 5u);
  EXPECT_EQ(accepted_.total(), 0u);
  expect_serves_a_good_client(*transport_, uri_, accepted_, io_);
}

TEST_F(shm_transport_test, silent_peer_is_closed_after_the_set_up_timeout) {
  auto addr = uds_address::parse(endpoint{"uds", ep(uri_).rest, uri_});
  auto sock = uds_connect_socket(*addr, transport_options{});
  ASSERT_TRUE(sock);
  char c;
  pollfd p{sock->fd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  EXPECT_EQ(::recv(sock->fd.get(), &c, 1, 0), 0);
  EXPECT_TRUE(logs_.wait_for({uri_, "did not complete the set-up within 2000 ms"}))
    << logs_.dump();
  expect_serves_a_good_client(*transport_, uri_, accepted_, io_);
}
