// The transports over inherited channels, for real: fd over a socketpair,
// pipe over two pipes. One side adopted as an accepted connection, the
// other as a dialed one; frames both ways, the end of the peer, garbage,
// and descriptors that cannot be adopted.

#include "fd/fd_transport.hpp"
#include "pipe/pipe_transport.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/reactor.hpp"
#include "relay/error.hpp"
#include "transport_test_support.hpp"

namespace relay {
namespace {

using namespace relay::test;

class fd_transport_test : public ::testing::Test {
protected:
  void SetUp() override {
    io_ = std::make_shared<reactor>();
    transport_ = std::make_unique<fd_transport>(io_, transport_options{});
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_), 0);
  }

  void TearDown() override {
    // Ends the transport adopted are closed by their connections.
    for (int fd : sv_)
      if (fd >= 0)
        ::close(fd);
  }

  static endpoint ep(const std::string& uri) {
    return endpoint::parse(uri).value();
  }

  static std::string uri_of(int fd) {
    return "fd://" + std::to_string(fd);
  }

  std::shared_ptr<reactor> io_;
  std::unique_ptr<fd_transport> transport_;
  int sv_[2] = {-1, -1};
};

TEST_F(fd_transport_test, both_ends_adopted_exchange_frames_and_see_the_end) {
  accept_queue accepted;
  auto listener = transport_->listen(ep(uri_of(sv_[0])), accepted.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  EXPECT_EQ((*listener)->uri(), uri_of(sv_[0]));
  auto client = transport_->connect(ep(uri_of(sv_[1])));
  ASSERT_TRUE(client) << str(client.error());
  sv_[0] = sv_[1] = -1; // owned by the connections now
  auto server = accepted.pop();
  ASSERT_TRUE(server);
  EXPECT_TRUE(contains(server->peer_name(), "uid"));
  auto server_rec = std::make_shared<recorder>(io_, true);
  auto client_rec = std::make_shared<recorder>(io_);
  server->start(server_rec);
  (*client)->start(client_rec);
  for (int i = 0; i < 10; ++i)
    ASSERT_FALSE((*client)->send(make_frame("ping " + std::to_string(i))));
  ASSERT_TRUE(client_rec->wait_frames(10));
  EXPECT_EQ(text_of(client_rec->frames()[9].body), "ping 9");
  (*client)->close(caf::error{});
  EXPECT_TRUE(server_rec->wait_closed());
  EXPECT_FALSE(server_rec->misbehaved());
  EXPECT_FALSE(client_rec->misbehaved());
}

TEST_F(fd_transport_test, garbage_closes_the_connection_with_a_reason) {
  auto conn = transport_->connect(ep(uri_of(sv_[0])));
  ASSERT_TRUE(conn) << str(conn.error());
  sv_[0] = -1;
  auto rec = std::make_shared<recorder>(io_);
  (*conn)->start(rec);
  std::string junk(64, '\xff');
  ASSERT_TRUE(write_all(sv_[1], junk.data(), junk.size()));
  ASSERT_TRUE(rec->wait_closed());
  EXPECT_TRUE(contains(str(rec->reason()), "magic")) << str(rec->reason());
}

TEST_F(fd_transport_test, refuses_what_it_cannot_adopt) {
  auto bad = transport_->connect(ep("fd://x"));
  ASSERT_FALSE(bad);
  EXPECT_TRUE(is(bad.error(), errc::invalid_uri)) << str(bad.error());
  auto closed = transport_->connect(ep("fd://999999"));
  ASSERT_FALSE(closed);
  EXPECT_TRUE(is(closed.error(), errc::connect_failed)) << str(closed.error());
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  auto pipe_end = transport_->listen(ep(uri_of(pipe_fds[0])), [](connection_ptr) {});
  ASSERT_FALSE(pipe_end);
  EXPECT_TRUE(is(pipe_end.error(), errc::listen_failed)) << str(pipe_end.error());
  EXPECT_TRUE(contains(str(pipe_end.error()), "not a socket")) << str(pipe_end.error());
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST(pipe_transport_test, two_pipe_pairs_exchange_frames_and_see_the_end) {
  auto io = std::make_shared<reactor>();
  pipe_transport transport{io, transport_options{}};
  int a_to_b[2];
  int b_to_a[2];
  ASSERT_EQ(::pipe2(a_to_b, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(b_to_a, O_CLOEXEC), 0);
  auto uri = [](int r, int w) {
    return endpoint::parse("pipe://" + std::to_string(r) + "," + std::to_string(w))
      .value();
  };
  accept_queue accepted;
  auto listener = transport.listen(uri(b_to_a[0], a_to_b[1]), accepted.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  auto client = transport.connect(uri(a_to_b[0], b_to_a[1]));
  ASSERT_TRUE(client) << str(client.error());
  auto server = accepted.pop();
  ASSERT_TRUE(server);
  auto server_rec = std::make_shared<recorder>(io, true);
  auto client_rec = std::make_shared<recorder>(io);
  server->start(server_rec);
  (*client)->start(client_rec);
  // Enough to fill a pipe (64 KiB) several times: writability matters.
  std::string big(200 * 1024, 'x');
  ASSERT_FALSE((*client)->send(make_frame(big)));
  for (int i = 0; i < 10; ++i)
    ASSERT_FALSE((*client)->send(make_frame("ping " + std::to_string(i))));
  ASSERT_TRUE(client_rec->wait_frames(11));
  EXPECT_EQ(client_rec->frames()[0].body.size(), big.size());
  EXPECT_EQ(text_of(client_rec->frames()[10].body), "ping 9");
  (*client)->close(caf::error{});
  EXPECT_TRUE(server_rec->wait_closed());
  EXPECT_FALSE(server_rec->misbehaved());
}

TEST(pipe_transport_test, refuses_the_wrong_ends_and_sockets) {
  auto io = std::make_shared<reactor>();
  pipe_transport transport{io, transport_options{}};
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  auto swapped = transport.connect(
    endpoint::parse("pipe://" + std::to_string(p[1]) + "," + std::to_string(p[0]))
      .value());
  ASSERT_FALSE(swapped);
  EXPECT_TRUE(contains(str(swapped.error()), "not the read end")) << str(swapped.error());
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto sock = transport.connect(
    endpoint::parse("pipe://" + std::to_string(sv[0]) + "," + std::to_string(p[1]))
      .value());
  ASSERT_FALSE(sock);
  EXPECT_TRUE(contains(str(sock.error()), "is not a pipe")) << str(sock.error());
  auto bad = transport.connect(endpoint::parse("pipe://3").value());
  ASSERT_FALSE(bad);
  EXPECT_TRUE(is(bad.error(), errc::invalid_uri));
  for (int fd : {p[0], p[1], sv[0], sv[1]})
    ::close(fd);
}

} // namespace
} // namespace relay
