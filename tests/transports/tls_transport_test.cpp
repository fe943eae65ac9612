// What only the tls transport does, over real loopback sockets: frames are
// encrypted on the wire; certificates from another CA, a missing client
// certificate's CA, a peer-name pin, a wrong or one-sided secret are refused
// with clear errors on both sides and counted; a relay that terminates TLS
// with each side and passes the secret's proofs through is caught by the
// channel binding; bad configuration fails at listen. What every transport
// must do is in conformance_test.cpp. Nothing sleeps.

#include "tls/tls_transport.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <openssl/err.h>

#include "common/reactor.hpp"
#include "relay/log.hpp"
#include "tcp/tcp_address.hpp"
#include "test_support.hpp"
#include "tls/tls_layer.hpp"
#include "tls_certs.hpp"
#include "transport_cases.hpp"
#include "transport_test_support.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

// A loopback listening socket on a free port.
unique_fd listen_socket(uint16_t& port) {
  unique_fd fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0
      || ::listen(fd.get(), 4) != 0
      || ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return unique_fd{};
  port = ntohs(sa.sin_port);
  return fd;
}

// Accepts one connection within `bound`.
unique_fd accept_one(int listener, std::chrono::milliseconds bound) {
  pollfd p{listener, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(bound.count())) <= 0)
    return unique_fd{};
  return unique_fd{::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC)};
}

unique_fd connect_to(const std::string& uri) {
  auto ep = endpoint::parse(uri);
  auto addr = tcp_address::parse(*ep, ep->scheme);
  auto targets = resolve(*addr, false, errc::connect_failed);
  if (!targets)
    return unique_fd{};
  auto& t = targets->front();
  unique_fd fd{::socket(t.family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (!fd || ::connect(fd.get(), t.get(), t.length) < 0)
    return unique_fd{};
  return fd;
}

// Copies bytes between `a` and `b` (blocking sockets) until either closes
// or `stop` is set, passing each chunk through `tap(from_a, bytes)`, which
// may change it.
template <class Tap>
void splice(int a, int b, std::atomic<bool>& stop, Tap tap) {
  char buf[16384];
  while (!stop) {
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (::poll(p, 2, 100) <= 0)
      continue;
    for (int i = 0; i < 2; ++i) {
      if (p[i].revents == 0)
        continue;
      auto n = ::recv(p[i].fd, buf, sizeof(buf), 0);
      if (n <= 0)
        return;
      std::string chunk(buf, static_cast<size_t>(n));
      tap(i == 0, chunk);
      if (!write_all(i == 0 ? b : a, chunk.data(), chunk.size()))
        return;
    }
  }
}

// A TCP proxy on loopback that forwards one connection to `target` and
// records every byte it forwards; armed, it flips the last byte of the
// next chunk from the client.
class recording_proxy {
public:
  explicit recording_proxy(const std::string& target) {
    listener_ = listen_socket(port_);
    thread_ = std::thread{[this, target] {
      auto in = accept_one(listener_.get(), 10s);
      auto out = connect_to(target);
      if (!in || !out)
        return;
      splice(in.get(), out.get(), stop_, [this](bool from_client,
                                                std::string& bytes) {
        if (from_client && armed_.exchange(false))
          bytes.back() = static_cast<char>(bytes.back() ^ 0x01);
        std::lock_guard<std::mutex> guard{mtx_};
        seen_ += bytes;
      });
    }};
  }

  ~recording_proxy() {
    stop_ = true;
    thread_.join();
  }

  std::string uri(const std::string& scheme) const {
    return scheme + "://127.0.0.1:" + std::to_string(port_);
  }

  std::string seen() {
    std::lock_guard<std::mutex> guard{mtx_};
    return seen_;
  }

  void arm() {
    armed_ = true;
  }

private:
  unique_fd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> armed_{false};
  std::mutex mtx_;
  std::string seen_;
  std::thread thread_;
};

// Runs the handshake of `ssl` on non-blocking `fd` until `deadline`.
bool drive_handshake(SSL* ssl, int fd, clock_type::time_point deadline) {
  for (;;) {
    ERR_clear_error();
    auto rc = SSL_do_handshake(ssl);
    if (rc == 1)
      return true;
    auto e = SSL_get_error(ssl, rc);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
      return false;
    pollfd p{fd, static_cast<short>(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT),
             0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - clock_type::now());
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      return false;
  }
}

// The relay attack of docs/security.md: a man in the middle that holds a
// certificate of the same CA terminates TLS with the client, opens its own
// TLS session to `target`, and passes the plaintext through both ways,
// without knowing the secret.
class tls_relay {
public:
  tls_relay(const std::string& target, const tls_files& own) {
    listener_ = listen_socket(port_);
    tls_options opts{own.ca_file, own.cert_file, own.key_file, ""};
    auto ctx = tls_context::make(opts, "relay");
    if (!ctx)
      return;
    thread_ = std::thread{[this, target, ctx = *ctx] {
      auto deadline = clock_type::now() + 10s;
      auto in = accept_one(listener_.get(), 10s);
      auto out = connect_to(target);
      if (!in || !out)
        return;
      for (int fd : {in.get(), out.get()})
        set_nonblocking(fd, true, errc::connect_failed, "relay");
      auto ssl_in = ctx->session(in.get(), true, "relay-in");
      auto ssl_out = ctx->session(out.get(), false, "relay-out");
      if (!ssl_in || !ssl_out
          || !drive_handshake(ssl_in->get(), in.get(), deadline)
          || !drive_handshake(ssl_out->get(), out.get(), deadline))
        return;
      tls_channel a{std::move(in), std::move(*ssl_in)};
      tls_channel b{std::move(out), std::move(*ssl_out)};
      char buf[16384];
      while (!stop_ && clock_type::now() < deadline) {
        pollfd p[2] = {{a.fd(), POLLIN, 0}, {b.fd(), POLLIN, 0}};
        ::poll(p, 2, 50);
        for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
          for (;;) {
            auto n = from->read(buf, sizeof(buf));
            if (n == 0 || (n < 0 && errno != EAGAIN))
              return;
            if (n < 0)
              break;
            iovec iov{buf, static_cast<size_t>(n)};
            for (ssize_t done = 0; done < n;) {
              iov.iov_base = buf + done;
              iov.iov_len = static_cast<size_t>(n - done);
              auto w = to->write(&iov, 1);
              if (w < 0 && errno != EAGAIN)
                return;
              done += std::max<ssize_t>(w, 0);
            }
          }
        }
      }
    }};
  }

  ~tls_relay() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }

  std::string uri() const {
    return "tls://127.0.0.1:" + std::to_string(port_);
  }

private:
  unique_fd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class tls_transport_test : public ::testing::Test {
protected:
  void SetUp() override {
    io_ = std::make_shared<reactor>();
  }

  // A transport with `files`, `secret` and an optional pin.
  std::unique_ptr<tls_transport> make(const tls_files& files,
                                      const std::string& secret = test_secret,
                                      const std::string& peer_name = "") {
    auto& s = settings_.emplace_back();
    caf::put(s, "relay.tls.ca-file", files.ca_file);
    caf::put(s, "relay.tls.cert-file", files.cert_file);
    caf::put(s, "relay.tls.key-file", files.key_file);
    if (!peer_name.empty())
      caf::put(s, "relay.tls.peer-name", peer_name);
    transport_options opts;
    opts.secret = secret;
    opts.settings = &s;
    opts.handshake_timeout = 5000ms;
    opts.connect_timeout = 2000ms;
    return std::make_unique<tls_transport>(io_, opts);
  }

  std::unique_ptr<acceptor> listen(tls_transport& t) {
    auto result = t.listen(ep("tls://127.0.0.1:0"), accepted_.callback());
    EXPECT_TRUE(result) << str(result.error());
    return result ? std::move(*result) : nullptr;
  }

  // Sends "text" from a new client of `where` and checks that it arrives.
  void expect_round_trip(tls_transport& client, const std::string& uri,
                         const std::string& text = "still here") {
    auto conn = client.connect(ep(uri));
    ASSERT_TRUE(conn) << str(conn.error());
    auto server = accepted_.pop();
    ASSERT_NE(server, nullptr);
    auto rec = std::make_shared<recorder>(io_, true);
    server->start(rec);
    (*conn)->start(std::make_shared<recorder>(io_));
    ASSERT_FALSE((*conn)->send(make_frame(text)));
    ASSERT_TRUE(rec->wait_frames(1));
    EXPECT_EQ(text_of(rec->frames()[0].body), text);
  }

  temp_dir dir_;
  test_ca ca_{dir_.path(), "good"};
  test_ca rogue_ca_{dir_.path(), "rogue"};
  tls_files node_ = ca_.issue("node.relay.test");
  std::deque<caf::settings> settings_; // outlive the transports
  std::shared_ptr<reactor> io_;
  accept_queue accepted_;
  log_capture logs_;
};

} // namespace

TEST_F(tls_transport_test, frames_are_encrypted_on_the_wire) {
  auto t = make(node_);
  auto l = listen(*t);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->uri().rfind("tls://127.0.0.1:", 0), 0u) << l->uri();
  const std::string payload = "plain-text-that-must-not-be-seen-0123456789";
  {
    recording_proxy proxy{l->uri()};
    expect_round_trip(*t, proxy.uri("tls"), payload);
    EXPECT_GT(proxy.seen().size(), payload.size());
    EXPECT_EQ(proxy.seen().find(payload), std::string::npos);
  }
  // The same proxy sees tcp's frames in the clear: the check above can fail.
  transport_options opts;
  opts.secret = test_secret;
  tcp_transport plain{io_, opts};
  auto pl = plain.listen(ep("tcp://127.0.0.1:0"), accepted_.callback());
  ASSERT_TRUE(pl);
  recording_proxy proxy{(*pl)->uri()};
  auto conn = plain.connect(ep(proxy.uri("tcp")));
  ASSERT_TRUE(conn) << str(conn.error());
  auto server = accepted_.pop();
  ASSERT_NE(server, nullptr);
  auto rec = std::make_shared<recorder>(io_, true);
  server->start(rec);
  (*conn)->start(std::make_shared<recorder>(io_));
  ASSERT_FALSE((*conn)->send(make_frame(payload)));
  ASSERT_TRUE(rec->wait_frames(1));
  EXPECT_NE(proxy.seen().find(payload), std::string::npos);
}

TEST_F(tls_transport_test, a_changed_byte_closes_the_connection) {
  auto t = make(node_);
  auto l = listen(*t);
  ASSERT_NE(l, nullptr);
  recording_proxy proxy{l->uri()};
  auto conn = t->connect(ep(proxy.uri("tls")));
  ASSERT_TRUE(conn) << str(conn.error());
  auto server = accepted_.pop();
  ASSERT_NE(server, nullptr);
  auto rec = std::make_shared<recorder>(io_);
  server->start(rec);
  (*conn)->start(std::make_shared<recorder>(io_));
  ASSERT_FALSE((*conn)->send(make_frame("intact")));
  ASSERT_TRUE(rec->wait_frames(1));
  // Two records back to back: the proxy changes the last byte of what it
  // reads next, which is the second record when both arrive together (the
  // failure then follows a good record in one read) or else the first.
  proxy.arm();
  ASSERT_FALSE((*conn)->send(make_frame("maybe intact")));
  // May fail: the server may already have closed on the first record.
  static_cast<void>((*conn)->send(make_frame("tampered with on the way")));
  ASSERT_TRUE(rec->wait_closed());
  EXPECT_TRUE(is(rec->reason(), errc::protocol_error)) << str(rec->reason());
  EXPECT_TRUE(contains(str(rec->reason()), "TLS")) << str(rec->reason());
  EXPECT_LE(rec->frames().size(), 2u);
  for (auto& f : rec->frames())
    EXPECT_NE(text_of(f.body), "tampered with on the way");
}

TEST_F(tls_transport_test, a_certificate_of_another_ca_is_refused) {
  auto server = make(node_);
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  // A client whose certificate another CA signed (it trusts the right CA).
  auto stranger_files = rogue_ca_.issue("stranger.relay.test");
  stranger_files.ca_file = ca_.ca_file();
  auto stranger = make(stranger_files);
  auto conn = stranger->connect(ep(l->uri()));
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::authentication_failed)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), l->uri())) << str(conn.error());
  EXPECT_TRUE(logs_.wait_for({l->uri(), "peer 127.0.0.1:",
                              "certificate not accepted"}))
    << logs_.dump();
  EXPECT_EQ(server->rejected_peers(), 1u);
  EXPECT_EQ(accepted_.total(), 0u);
  // A server whose certificate another CA signed: the client refuses it.
  auto imposter_files = rogue_ca_.issue("imposter.relay.test");
  imposter_files.ca_file = ca_.ca_file();
  auto imposter = make(imposter_files);
  auto il = listen(*imposter);
  ASSERT_NE(il, nullptr);
  auto good = make(node_);
  auto to_imposter = good->connect(ep(il->uri()));
  ASSERT_FALSE(to_imposter);
  EXPECT_TRUE(is(to_imposter.error(), errc::authentication_failed))
    << str(to_imposter.error());
  EXPECT_TRUE(contains(str(to_imposter.error()), "certificate not accepted"))
    << str(to_imposter.error());
  expect_round_trip(*good, l->uri());
}

TEST_F(tls_transport_test, the_peer_name_pin_refuses_other_names) {
  auto server = make(node_);
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  auto pinned_elsewhere = make(node_, test_secret, "other.relay.test");
  auto conn = pinned_elsewhere->connect(ep(l->uri()));
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::authentication_failed)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "hostname mismatch"))
    << str(conn.error());
  auto pinned_right = make(node_, test_secret, "node.relay.test");
  expect_round_trip(*pinned_right, l->uri());
  // The server's pin applies to clients.
  auto picky = make(node_, test_secret, "other.relay.test");
  auto pl = listen(*picky);
  ASSERT_NE(pl, nullptr);
  auto refused = make(node_)->connect(ep(pl->uri()));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), errc::authentication_failed))
    << str(refused.error());
  EXPECT_TRUE(logs_.wait_for({pl->uri(), "hostname mismatch"})) << logs_.dump();
  EXPECT_EQ(picky->rejected_peers(), 1u);
}

TEST_F(tls_transport_test, a_wrong_or_one_sided_secret_is_refused) {
  auto server = make(node_);
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  auto wrong = make(node_, "another-secret-of-enough-length");
  auto conn = wrong->connect(ep(l->uri()));
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::authentication_failed)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "wrong secret")) << str(conn.error());
  auto none = make(node_, "");
  auto conn2 = none->connect(ep(l->uri()));
  ASSERT_FALSE(conn2);
  EXPECT_TRUE(is(conn2.error(), errc::authentication_failed))
    << str(conn2.error());
  EXPECT_TRUE(contains(str(conn2.error()), "requires authentication"))
    << str(conn2.error());
  EXPECT_TRUE(logs_.wait_for({l->uri(), "wrong secret"})) << logs_.dump();
  EXPECT_TRUE(logs_.wait_for({l->uri(), "the peer runs without a secret"}))
    << logs_.dump();
  EXPECT_EQ(server->rejected_peers(), 2u);
  // Certificates alone (no secret on either side) work.
  auto cert_only_server = make(node_, "");
  auto cl = listen(*cert_only_server);
  ASSERT_NE(cl, nullptr);
  expect_round_trip(*none, cl->uri());
}

TEST_F(tls_transport_test, a_relayed_session_fails_the_bound_proof) {
  auto server = make(node_);
  auto l = listen(*server);
  ASSERT_NE(l, nullptr);
  auto insider = ca_.issue("insider.relay.test");
  {
    tls_relay relay{l->uri(), insider};
    auto client = make(node_);
    auto conn = client->connect(ep(relay.uri()));
    ASSERT_FALSE(conn);
    EXPECT_TRUE(is(conn.error(), errc::authentication_failed))
      << str(conn.error());
    EXPECT_TRUE(logs_.wait_for({l->uri(), "proof does not match",
                                "relayed"}))
      << logs_.dump();
    EXPECT_EQ(accepted_.total(), 0u);
  }
  { // Control: without a secret the same relay passes (certificates alone
    // cannot tell an insider's relay), so the refusal above is the binding's.
    auto open_server = make(node_, "");
    auto ol = listen(*open_server);
    ASSERT_NE(ol, nullptr);
    tls_relay relay{ol->uri(), insider};
    auto client = make(node_, "");
    expect_round_trip(*client, relay.uri());
  }
}

TEST_F(tls_transport_test, bad_configuration_fails_at_listen_and_connect) {
  transport_options opts;
  opts.secret = test_secret;
  tls_transport bare{io_, opts};
  auto l = bare.listen(ep("tls://127.0.0.1:0"), accepted_.callback());
  ASSERT_FALSE(l);
  EXPECT_TRUE(is(l.error(), errc::invalid_argument)) << str(l.error());
  EXPECT_TRUE(contains(str(l.error()), "relay.tls.ca-file")) << str(l.error());
  auto c = bare.connect(ep("tls://127.0.0.1:1"));
  ASSERT_FALSE(c);
  EXPECT_TRUE(is(c.error(), errc::invalid_argument)) << str(c.error());
  auto readable = node_;
  ::chmod(readable.key_file.c_str(), 0644);
  auto loose = make(readable);
  auto l2 = loose->listen(ep("tls://127.0.0.1:0"), accepted_.callback());
  ASSERT_FALSE(l2);
  EXPECT_TRUE(contains(str(l2.error()), "chmod 600")) << str(l2.error());
  ::chmod(readable.key_file.c_str(), 0600);
  auto mismatched = node_;
  mismatched.key_file = ca_.issue("other.relay.test").key_file;
  auto wrong_key = make(mismatched);
  auto l3 = wrong_key->listen(ep("tls://127.0.0.1:0"), accepted_.callback());
  ASSERT_FALSE(l3);
  EXPECT_TRUE(contains(str(l3.error()), "relay.tls.key-file"))
    << str(l3.error());
  auto l4 = bare.listen(ep("tcp://127.0.0.1:0"), accepted_.callback());
  ASSERT_FALSE(l4);
  EXPECT_TRUE(is(l4.error(), errc::invalid_uri)) << str(l4.error());
}
