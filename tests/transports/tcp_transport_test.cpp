// What only the tcp transport does, over real loopback sockets: addresses
// and ports, and authentication: right secret, wrong secret, no secret,
// insecure mode, a replayed handshake, a peer that stalls mid-handshake,
// a version mismatch; and the errors a failed connect gives. What every
// transport must do is in conformance_test.cpp. Nothing sleeps.

#include "tcp/tcp_transport.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/reactor.hpp"
#include "relay/log.hpp"
#include "tcp/tcp_address.hpp"
#include "tcp/tcp_auth.hpp"
#include "tcp/tcp_socket.hpp"
#include "test_support.hpp"
#include "transport_cases.hpp"
#include "transport_test_support.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

// Reads exactly `n` bytes from blocking socket `fd` within 10 s; fewer on EOF.
std::vector<uint8_t> read_n(int fd, size_t n) {
  std::vector<uint8_t> result;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (result.size() < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      break;
    uint8_t buf[256];
    auto got = ::recv(fd, buf, std::min(sizeof(buf), n - result.size()), 0);
    if (got <= 0)
      break;
    result.insert(result.end(), buf, buf + got);
  }
  return result;
}

// True once the peer closed `fd` (EOF or reset) within 10 s.
bool sees_eof(int fd) {
  uint8_t buf[256];
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      return false;
    auto got = ::recv(fd, buf, sizeof(buf), 0);
    if (got <= 0)
      return true;
  }
}

unique_fd plain_connect(const std::string& uri) {
  auto addr = tcp_address::parse(ep(uri));
  auto targets = resolve(*addr, false, errc::connect_failed);
  if (!targets)
    return unique_fd{};
  auto& t = targets->front();
  unique_fd fd{::socket(t.family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (!fd || ::connect(fd.get(), t.get(), t.length) < 0)
    return unique_fd{};
  return fd;
}

class tcp_transport_test : public ::testing::Test {
protected:
  void SetUp() override {
    io_ = std::make_shared<reactor>();
  }

  // Outlives the transports made with it.
  caf::settings insecure_settings_;

  std::unique_ptr<tcp_transport>
  make(const std::string& secret = test_secret, bool insecure = false,
       std::chrono::milliseconds handshake_timeout = 5000ms) {
    transport_options opts;
    opts.secret = secret;
    if (insecure) {
      caf::put(insecure_settings_, tcp_insecure_key, true);
      opts.settings = &insecure_settings_;
    }
    opts.handshake_timeout = handshake_timeout;
    opts.connect_timeout = 2000ms;
    return std::make_unique<tcp_transport>(io_, opts);
  }

  // Listens on loopback port 0 with `t`; the acceptor's uri has the port.
  std::unique_ptr<acceptor> listen(tcp_transport& t,
                                   const std::string& uri = "tcp://127.0.0.1:0") {
    auto result = t.listen(ep(uri), accepted_.callback());
    EXPECT_TRUE(result) << str(result.error());
    return result ? std::move(*result) : nullptr;
  }


  std::shared_ptr<reactor> io_;
  accept_queue accepted_;
  log_capture logs_;
};

} // namespace

// -- addresses ----------------------------------------------------------------

TEST(tcp_address_test, parses_hosts_ports_and_ipv6_literals) {
  auto a = tcp_address::parse(ep("tcp://127.0.0.1:4000"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 4000);
  auto b = tcp_address::parse(ep("tcp://[::1]:0"));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->uri(), "tcp://[::1]:0");
  auto c = tcp_address::parse(ep("tcp://:65535"));
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->host.empty());
  auto d = tcp_address::parse(ep("tcp://localhost:80"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->host, "localhost");
}

TEST(tcp_address_test, rejects_malformed_addresses) {
  for (auto uri : {"tcp:127.0.0.1:1", "tcp://127.0.0.1", "tcp://127.0.0.1:",
                   "tcp://127.0.0.1:65536", "tcp://127.0.0.1:12a",
                   "tcp://[::1:4000", "tcp://::1:4000", "tcp://[::1]4000",
                   "tcp://host/path:1", "tcp://[]:1"}) {
    auto result = tcp_address::parse(ep(uri));
    EXPECT_FALSE(result) << uri;
    if (!result) {
      EXPECT_TRUE(is(result.error(), errc::invalid_uri));
      EXPECT_TRUE(contains(str(result.error()), uri)) << str(result.error());
    }
  }
}

TEST_F(tcp_transport_test, port_zero_reports_the_real_port) {
  auto t = make();
  auto l = listen(*t);
  ASSERT_NE(l, nullptr);
  auto addr = tcp_address::parse(ep(l->uri()));
  ASSERT_TRUE(addr) << l->uri();
  EXPECT_EQ(addr->host, "127.0.0.1");
  EXPECT_NE(addr->port, 0);
  expect_serves_a_good_client(*t, l->uri(), accepted_, io_);
}

TEST_F(tcp_transport_test, no_host_binds_loopback_only) {
  auto t = make();
  auto l = listen(*t, "tcp://:0");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->uri().rfind("tcp://127.0.0.1:", 0), 0u) << l->uri();
}

TEST_F(tcp_transport_test, ipv6_loopback_and_host_names_work) {
  auto t = make();
  auto v6 = listen(*t, "tcp://[::1]:0");
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ(v6->uri().rfind("tcp://[::1]:", 0), 0u) << v6->uri();
  expect_serves_a_good_client(*t, v6->uri(), accepted_, io_);
  auto named = listen(*t, "tcp://localhost:0");
  ASSERT_NE(named, nullptr);
  auto port = tcp_address::parse(ep(named->uri()))->port;
  auto host_form = "tcp://localhost:" + std::to_string(port);
  auto conn = t->connect(ep(host_form));
  ASSERT_TRUE(conn) << str(conn.error());
  EXPECT_NE(accepted_.pop(), nullptr);
}

// -- authentication -------------------------------------------------------------

TEST_F(tcp_transport_test, wrong_secret_fails_on_both_sides_and_is_counted) {
  auto server = make();
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  auto intruder = make("another-secret-of-enough-length");
  auto conn = intruder->connect(ep(l->uri()));
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::authentication_failed)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), l->uri())) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "wrong secret")) << str(conn.error());
  EXPECT_TRUE(logs_.wait_for({l->uri(), "peer 127.0.0.1:",
                              "authentication failed"}))
    << logs_.dump();
  EXPECT_EQ(server->rejected_peers(), 1u);
  EXPECT_EQ(accepted_.total(), 0u);
  expect_serves_a_good_client(*server, l->uri(), accepted_, io_);
}

TEST_F(tcp_transport_test, no_secret_refuses_to_listen_or_connect) {
  auto t = make("");
  auto l = t->listen(ep("tcp://127.0.0.1:0"), accepted_.callback());
  ASSERT_FALSE(l);
  EXPECT_TRUE(is(l.error(), errc::insecure_configuration)) << str(l.error());
  EXPECT_TRUE(contains(str(l.error()), "relay.cookie-file")) << str(l.error());
  auto c = t->connect(ep("tcp://127.0.0.1:1"));
  ASSERT_FALSE(c);
  EXPECT_TRUE(is(c.error(), errc::insecure_configuration)) << str(c.error());
}

TEST_F(tcp_transport_test, insecure_mode_works_only_with_insecure_peers) {
  auto open = make("", /*insecure=*/true);
  auto l = listen(*open);
  ASSERT_NE(l, nullptr);
  EXPECT_TRUE(logs_.wait_for({l->uri(), "WITHOUT authentication"}))
    << logs_.dump();
  expect_serves_a_good_client(*open, l->uri(), accepted_, io_);
  // A node with a secret never talks to an unauthenticated one.
  auto secure = make();
  auto conn = secure->connect(ep(l->uri()));
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::authentication_failed)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "without a secret"))
    << str(conn.error());
  EXPECT_TRUE(logs_.wait_for({l->uri(), "requires authentication"}))
    << logs_.dump();
}

TEST_F(tcp_transport_test, proof_bound_to_an_old_server_nonce_is_rejected) {
  // A proof captured from an earlier session answers an earlier server
  // nonce; the server picks a fresh one for every connection.
  auto server = make();
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  auto fd = plain_connect(l->uri());
  ASSERT_TRUE(fd);
  tcp_auth::handshake victim{tcp_auth::role::client, test_secret, "victim"};
  auto challenge = victim.output();
  auto server_challenge = read_n(fd.get(), tcp_auth::challenge_size);
  ASSERT_EQ(server_challenge.size(), tcp_auth::challenge_size);
  // The proof the victim would have sent for an *earlier* server nonce.
  std::array<uint8_t, tcp_auth::nonce_size> old_nonce{};
  old_nonce.fill(0x42);
  auto stale = tcp_auth::proof(test_secret, tcp_auth::role::client,
                               challenge.data() + 8, old_nonce.data());
  std::vector<uint8_t> replay = challenge;
  replay.insert(replay.end(), stale.begin(), stale.end());
  ASSERT_TRUE(write_all(fd.get(), replay.data(), replay.size()));
  auto verdict = read_n(fd.get(), 1);
  ASSERT_EQ(verdict.size(), 1u);
  EXPECT_EQ(verdict[0], 1) << "the server accepted a replayed proof";
  EXPECT_TRUE(sees_eof(fd.get()));
  EXPECT_TRUE(logs_.wait_for({l->uri(), "does not match"})) << logs_.dump();
  EXPECT_EQ(server->rejected_peers(), 1u);
  EXPECT_EQ(accepted_.total(), 0u);
}

TEST_F(tcp_transport_test, full_replay_of_a_recorded_client_fails) {
  // A man in the middle records every byte a genuine client sent, then
  // replays the whole byte stream on a new connection.
  auto server = make();
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  std::vector<uint8_t> sent;
  {
    auto fd = plain_connect(l->uri());
    ASSERT_TRUE(fd);
    tcp_auth::handshake hs{tcp_auth::role::client, test_secret, "genuine"};
    // Drive the handshake by hand to capture exactly what goes out.
    while (hs.state() == tcp_auth::handshake::status::running) {
      auto& out = hs.output();
      sent.insert(sent.end(), out.begin(), out.end());
      ASSERT_TRUE(write_all(fd.get(), out.data(), out.size()));
      out.clear();
      if (hs.state() != tcp_auth::handshake::status::running)
        break;
      auto in = read_n(fd.get(), hs.wanted());
      ASSERT_FALSE(in.empty());
      hs.feed(in.data(), in.size());
    }
    auto& out = hs.output();
    sent.insert(sent.end(), out.begin(), out.end());
    ASSERT_TRUE(write_all(fd.get(), out.data(), out.size()));
    ASSERT_EQ(hs.state(), tcp_auth::handshake::status::succeeded);
    ASSERT_NE(accepted_.pop(), nullptr);
  }
  auto fd = plain_connect(l->uri());
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write_all(fd.get(), sent.data(), sent.size()));
  auto reply = read_n(fd.get(), tcp_auth::challenge_size + 1);
  ASSERT_EQ(reply.size(), tcp_auth::challenge_size + 1);
  EXPECT_EQ(reply.back(), 1) << "the server accepted a replayed handshake";
  EXPECT_TRUE(sees_eof(fd.get()));
  EXPECT_EQ(server->rejected_peers(), 1u);
  EXPECT_EQ(accepted_.total(), 1u);
}

TEST_F(tcp_transport_test, peer_stalling_mid_handshake_is_closed_in_time) {
  auto server = make(test_secret, false, 300ms);
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  auto fd = plain_connect(l->uri());
  ASSERT_TRUE(fd);
  tcp_auth::handshake hs{tcp_auth::role::client, test_secret, "staller"};
  // Sends its challenge, then nothing: no proof ever comes.
  ASSERT_TRUE(write_all(fd.get(), hs.output().data(), hs.output().size()));
  EXPECT_EQ(read_n(fd.get(), tcp_auth::challenge_size).size(),
            tcp_auth::challenge_size);
  EXPECT_TRUE(sees_eof(fd.get()));
  EXPECT_TRUE(logs_.wait_for({l->uri(), "unauthenticated connection",
                              "did not complete the set-up within 300 ms"}))
    << logs_.dump();
  EXPECT_EQ(server->rejected_peers(), 1u);
  expect_serves_a_good_client(*server, l->uri(), accepted_, io_);
}

TEST_F(tcp_transport_test, garbage_instead_of_a_handshake_is_rejected) {
  auto server = make();
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  auto fd = plain_connect(l->uri());
  ASSERT_TRUE(fd);
  std::string junk(tcp_auth::challenge_size, 'G');
  ASSERT_TRUE(write_all(fd.get(), junk.data(), junk.size()));
  EXPECT_TRUE(sees_eof(fd.get()));
  EXPECT_TRUE(logs_.wait_for({l->uri(), "bad magic"})) << logs_.dump();
  expect_serves_a_good_client(*server, l->uri(), accepted_, io_);
}

TEST_F(tcp_transport_test, auth_version_mismatch_is_a_clear_error) {
  auto server = make();
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  auto fd = plain_connect(l->uri());
  ASSERT_TRUE(fd);
  tcp_auth::handshake hs{tcp_auth::role::client, test_secret, "future"};
  auto challenge = hs.output();
  challenge[4] = 9; // version
  ASSERT_TRUE(write_all(fd.get(), challenge.data(), challenge.size()));
  EXPECT_TRUE(sees_eof(fd.get()));
  EXPECT_TRUE(logs_.wait_for({l->uri(), "authentication version 9"}))
    << logs_.dump();
}

// -- connect errors -------------------------------------------------------------

TEST_F(tcp_transport_test, connect_errors_name_the_endpoint_and_cause) {
  auto t = make();
  // Refused: a port we had and closed again.
  std::string closed_uri;
  {
    auto l = listen(*t);
    ASSERT_NE(l, nullptr);
    closed_uri = l->uri();
  }
  auto refused = t->connect(ep(closed_uri));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), errc::connect_failed));
  EXPECT_TRUE(contains(str(refused.error()), closed_uri));
  EXPECT_TRUE(contains(str(refused.error()), "connection refused"))
    << str(refused.error());
  auto unknown = t->connect(ep("tcp://no-such-host.invalid:4000"));
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(is(unknown.error(), errc::connect_failed));
  EXPECT_TRUE(contains(str(unknown.error()), "tcp://no-such-host.invalid:4000"));
  EXPECT_TRUE(contains(str(unknown.error()), "host not found"))
    << str(unknown.error());
}

TEST_F(tcp_transport_test, connect_to_a_full_backlog_times_out) {
  // A listener that never accepts, with its backlog filled: the kernel
  // drops further SYNs, so connect gets no answer.
  unique_fd listener{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(::listen(listener.get(), 0), 0);
  socklen_t len = sizeof(sa);
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  auto uri = "tcp://127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  std::vector<unique_fd> fillers;
  for (int i = 0; i < 8; ++i) {
    unique_fd f{::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    ::connect(f.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    fillers.push_back(std::move(f));
  }
  transport_options opts;
  opts.secret = test_secret;
  opts.connect_timeout = 300ms;
  opts.handshake_timeout = 300ms;
  tcp_transport t{io_, opts};
  auto conn = t.connect(ep(uri));
  ASSERT_FALSE(conn);
  // Either the connect got no answer, or (if the kernel completed it) the
  // never-accepting listener never answered the handshake.
  EXPECT_TRUE(is(conn.error(), errc::connect_timeout)
              || is(conn.error(), errc::handshake_timeout))
    << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), uri)) << str(conn.error());
}
