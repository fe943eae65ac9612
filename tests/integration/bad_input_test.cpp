// What a misbehaving peer can do to a node: each case closes that one
// connection with a log line naming the peer and the reason (or, for a
// well-formed but undeliverable message, answers with an error), and the
// node then still serves a good peer.

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <array>
#include <optional>

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <cereal/types/array.hpp>

#include "relay/node.hpp"
#include "test_support.hpp"
#include "transport_cases.hpp"
#include "wire.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

caf::behavior echo() {
  return {[](ping& x) { return pong{x.seq, std::move(x.payload)}; }};
}

struct raw_frame {
  frame_header header;
  std::vector<std::byte> body;
};

/// A hand-driven client that speaks (or breaks) the protocol on a raw socket
/// of the transport under test.
class raw_client {
public:
  /// Takes a socket connected past any transport handshake (see
  /// transport_case::raw_connect).
  explicit raw_client(unique_fd fd)
    : fd_(fd.release()), connected_(fd_ >= 0) {
    // nop
  }

  ~raw_client() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  bool connected() const {
    return connected_;
  }

  void write(const std::vector<std::byte>& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      auto n = ::send(fd_, bytes.data() + done, bytes.size() - done,
                      MSG_NOSIGNAL);
      if (n <= 0)
        return;
      done += static_cast<size_t>(n);
    }
  }

  void shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
  }

  /// Reads exactly `n` bytes within `timeout`; false on EOF or timeout.
  bool read_exactly(std::byte* out, size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t done = 0;
    while (done < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return false;
      auto r = ::read(fd_, out + done, n - done);
      if (r <= 0)
        return false;
      done += static_cast<size_t>(r);
    }
    return true;
  }

  std::optional<raw_frame> read_frame(std::chrono::milliseconds timeout = 5s) {
    std::byte hdr[frame_header::size];
    if (!read_exactly(hdr, sizeof(hdr), timeout))
      return std::nullopt;
    raw_frame f;
    f.header = frame_header::read(hdr);
    f.body.resize(f.header.length);
    if (f.header.length > 0 && !read_exactly(f.body.data(), f.body.size(), timeout))
      return std::nullopt;
    return f;
  }

  /// True once the node closed the connection (EOF) within `timeout`.
  bool closed_by_peer(std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::byte buf[4096];
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return false;
      auto r = ::read(fd_, buf, sizeof(buf));
      if (r <= 0)
        return true;
    }
  }

private:
  int fd_ = -1;
  bool connected_ = false;
};

std::vector<std::byte> frame(frame_kind kind, std::vector<std::byte> body,
                             uint8_t version = frame_header::current_version) {
  std::vector<std::byte> buf(frame_header::size);
  frame_header h;
  h.kind = kind;
  h.version = version;
  h.length = static_cast<uint32_t>(body.size());
  h.write(buf.data());
  buf.insert(buf.end(), body.begin(), body.end());
  return buf;
}

std::vector<std::byte> hello_body(uint64_t flags = 0) {
  wire::hello h;
  h.flags = flags;
  h.pid = 4242;
  for (size_t i = 0; i < h.incarnation.size(); ++i)
    h.incarnation[i] = static_cast<uint8_t>(i + 1);
  h.node_name = "raw";
  h.serial = 1;
  std::vector<std::byte> body;
  wire_writer out{body};
  out(h);
  return body;
}

/// A probe or probe_reply frame carrying `token`.
std::vector<std::byte> token_frame(frame_kind kind, uint64_t token) {
  std::vector<std::byte> body;
  wire_writer out{body};
  out(token);
  return frame(kind, body);
}

} // namespace

class bad_input : public ::testing::TestWithParam<transport_case> {
protected:
  void SetUp() override {
    auto cookie = dir.path() + "/cookie";
    {
      std::ofstream out{cookie};
      out << test_secret << '\n';
    }
    ::chmod(cookie.c_str(), 0600);
    for (auto* cfg : {&server_cfg, &client_cfg}) {
      cfg->add_message_type<ping>().add_message_type<pong>();
      cfg->cookie_file = cookie;
      GetParam().node_settings(cfg->content);
    }
    server_cfg.node_name = "server";
    server_cfg.max_frame_size = 1024 * 1024;
    server_cfg.handshake_timeout = 300ms;
    client_cfg.node_name = "good-client";
    server = std::make_unique<node>(server_cfg);
    client = std::make_unique<node>(client_cfg);
    auto real = server->listen(GetParam().listen_uri(dir.path(), "server"));
    ASSERT_TRUE(real) << describe(real.error());
    uri = *real;
    echo_actor = server->system().spawn(echo);
    ASSERT_FALSE(server->publish(echo_actor, "echo"));
  }

  void TearDown() override {
    caf::anon_send_exit(echo_actor, caf::exit_reason::user_shutdown);
    client.reset();
    server.reset();
  }

  /// A raw client that completed the handshake, with hello `flags`.
  std::unique_ptr<raw_client> handshaken(uint64_t flags = 0) {
    auto c = std::make_unique<raw_client>(GetParam().raw_connect(uri));
    EXPECT_TRUE(c->connected());
    auto hello = c->read_frame();
    EXPECT_TRUE(hello && hello->header.kind == frame_kind::hello);
    c->write(frame(frame_kind::hello, hello_body(flags)));
    return c;
  }

  /// Resolves "echo" by hand; returns its actor id.
  uint64_t raw_lookup(raw_client& c) {
    std::vector<std::byte> body;
    wire_writer out{body};
    out(uint64_t{1}, std::string{"echo"});
    c.write(frame(frame_kind::lookup, body));
    auto reply = c.read_frame();
    EXPECT_TRUE(reply && reply->header.kind == frame_kind::lookup_reply);
    if (!reply)
      return 0;
    wire_reader in{reply->body.data(), reply->body.size()};
    uint64_t req = 0, aid = 0;
    uint8_t status = 0, tag = 0;
    in(req, status, tag, aid);
    EXPECT_EQ(status, 0);
    return aid;
  }

  /// A message frame from actor 77 of the raw client to `receiver`.
  std::vector<std::byte> request_frame(uint64_t receiver, uint64_t type_id) {
    std::vector<std::byte> body;
    wire_writer out{body};
    uint64_t request_mid = caf::message_id::default_async_value | 5;
    out(receiver, uint8_t{1}, uint64_t{77}, request_mid,
        cereal::make_size_tag(uint64_t{0}), cereal::make_size_tag(uint64_t{1}),
        type_id, int32_t{1});
    return frame(frame_kind::message, body);
  }

  /// Reads the error response the node sends back to actor 77.
  caf::error read_error_response(raw_client& c) {
    // The node first asks to monitor our actor 77 (it made a proxy for it).
    auto f = c.read_frame();
    while (f && f->header.kind == frame_kind::monitor)
      f = c.read_frame();
    EXPECT_TRUE(f && f->header.kind == frame_kind::message);
    if (!f)
      return caf::error{};
    wire_reader in{f->body.data(), f->body.size()};
    uint64_t receiver = 0, mid = 0, type_id = 0;
    uint8_t sender_tag = 0;
    in(receiver, sender_tag, mid);
    EXPECT_EQ(receiver, 77u);
    EXPECT_TRUE(caf::message_id{mid}.is_response());
    uint64_t stages = 0, count = 0;
    in(cereal::make_size_tag(stages), cereal::make_size_tag(count), type_id);
    EXPECT_EQ(type_id, message_registry::id_of("error"));
    uint8_t code = 0;
    uint64_t category = 0;
    std::string text;
    in(code, category, text);
    return caf::error{code, static_cast<caf::atom_value>(category),
                      caf::make_message(text)};
  }

  /// The node still serves a well-behaved peer.
  void expect_good_round_trip() {
    auto remote = client->lookup(uri, "echo");
    ASSERT_TRUE(remote) << describe(remote.error());
    caf::scoped_actor self{client->system()};
    bool ok = false;
    self->request(*remote, 5s, ping{1, "still here"})
      .receive([&](const pong& x) { ok = x.payload == "still here"; },
               [](caf::error& err) { ADD_FAILURE() << describe(err); });
    EXPECT_TRUE(ok);
  }

  temp_dir dir;
  node_config server_cfg;
  node_config client_cfg;
  std::unique_ptr<node> server;
  std::unique_ptr<node> client;
  std::string uri;
  caf::actor echo_actor;
};

TEST_P(bad_input, garbage_bytes) {
  log_capture logs;
  raw_client c{GetParam().raw_connect(uri)};
  c.write(std::vector<std::byte>(64, std::byte{0xab}));
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_TRUE(logs.wait_for({uri, "bad magic"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, truncated_frame_then_close) {
  log_capture logs;
  auto c = handshaken();
  auto partial = frame(frame_kind::message, std::vector<std::byte>(100));
  partial.resize(frame_header::size + 10);
  c->write(partial);
  c->shutdown_write();
  EXPECT_TRUE(c->closed_by_peer());
  EXPECT_TRUE(logs.wait_for({uri, "mid-frame"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, length_over_the_bound) {
  log_capture logs;
  auto c = handshaken();
  std::vector<std::byte> hdr(frame_header::size);
  frame_header h;
  h.length = 2 * 1024 * 1024;
  h.write(hdr.data());
  c->write(hdr);
  EXPECT_TRUE(c->closed_by_peer());
  EXPECT_TRUE(logs.wait_for({uri, "exceeds the bound of 1048576"})) << logs.dump();
  EXPECT_GE(server->stats().protocol_errors, 1u);
  expect_good_round_trip();
}

TEST_P(bad_input, wrong_magic) {
  log_capture logs;
  raw_client c{GetParam().raw_connect(uri)};
  std::vector<std::byte> hdr(frame_header::size);
  frame_header h;
  h.magic = 0x12345678;
  h.write(hdr.data());
  c.write(hdr);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_TRUE(logs.wait_for({uri, "bad magic 0x12345678"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, wrong_version_is_rejected_clearly) {
  log_capture logs;
  raw_client c{GetParam().raw_connect(uri)};
  ASSERT_TRUE(c.read_frame()); // the node's hello
  c.write(frame(frame_kind::hello, hello_body(), 2));
  auto rej = c.read_frame();
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->header.kind, frame_kind::reject);
  wire_reader in{rej->body.data(), rej->body.size()};
  wire::reject body;
  in(body);
  EXPECT_EQ(body.code, static_cast<uint8_t>(errc::version_mismatch));
  EXPECT_NE(body.reason.find("speaks protocol version 2"), std::string::npos);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_TRUE(logs.wait_for({uri, "version_mismatch"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, unknown_frame_kind) {
  log_capture logs;
  auto c = handshaken();
  c->write(frame(static_cast<frame_kind>(99), {}));
  EXPECT_TRUE(c->closed_by_peer());
  EXPECT_TRUE(logs.wait_for({"'raw'", "unknown frame kind 99"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, unknown_message_type_id_gets_an_error_response) {
  auto c = handshaken();
  auto aid = raw_lookup(*c);
  c->write(request_frame(aid, 0x0123456789abcdefull));
  auto err = read_error_response(*c);
  EXPECT_EQ(err.code(), static_cast<uint8_t>(errc::unknown_type_id));
  EXPECT_EQ(server->stats().unknown_type_ids, 1u);
  // That connection still works, and so does everyone else's.
  EXPECT_NE(raw_lookup(*c), 0u);
  expect_good_round_trip();
}

TEST_P(bad_input, message_to_an_actor_that_does_not_exist) {
  auto c = handshaken();
  c->write(request_frame(999999, message_registry::id_of("i32")));
  auto err = read_error_response(*c);
  EXPECT_EQ(err.code(), static_cast<uint8_t>(errc::no_such_actor));
  EXPECT_NE(raw_lookup(*c), 0u);
  expect_good_round_trip();
}

TEST_P(bad_input, handshake_that_never_completes_times_out) {
  log_capture logs;
  raw_client c{GetParam().raw_connect(uri)};
  ASSERT_TRUE(c.connected());
  // Send nothing: the node closes the connection after its 300 ms bound.
  EXPECT_TRUE(c.closed_by_peer(5s));
  EXPECT_TRUE(logs.wait_for({uri, "did not complete the handshake"}))
    << logs.dump();
  EXPECT_GE(server->stats().rejected_peers, 1u);
  expect_good_round_trip();
}

TEST_P(bad_input, malformed_hello_is_rejected) {
  log_capture logs;
  raw_client c{GetParam().raw_connect(uri)};
  ASSERT_TRUE(c.read_frame());
  c.write(frame(frame_kind::hello, std::vector<std::byte>(3)));
  auto rej = c.read_frame();
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->header.kind, frame_kind::reject);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_TRUE(logs.wait_for({uri, "malformed hello"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, link_naming_our_own_actor_as_the_peers_is_refused) {
  // Found by fuzzing: a link frame whose first party is one of our actors
  // (tag 2) or an actor of a node we have no connection to (tag 3). Either
  // would link local actors to each other or to a dead proxy.
  for (uint8_t tag : {uint8_t{2}, uint8_t{3}, uint8_t{0}}) {
    SCOPED_TRACE("tag " + std::to_string(tag));
    log_capture logs;
    auto c = handshaken();
    auto aid = raw_lookup(*c);
    std::vector<std::byte> body;
    wire_writer out{body};
    out(tag);
    if (tag == 2) {
      out(aid);
    } else if (tag == 3) {
      std::array<uint8_t, 20> host{};
      host.fill(7);
      out(uint32_t{999}, host, uint64_t{5});
    }
    out(aid);
    c->write(frame(frame_kind::link, body));
    EXPECT_TRUE(c->closed_by_peer());
    EXPECT_TRUE(logs.wait_for({"'raw'", "malformed link frame",
                               "only an actor of the sending node"}))
      << logs.dump();
  }
  EXPECT_GE(server->stats().protocol_errors, 3u);
  expect_good_round_trip(); // echo is alive and still published
}

TEST_P(bad_input, reserved_header_flags_close_the_connection) {
  log_capture logs;
  auto c = handshaken();
  auto f = frame(frame_kind::heartbeat, {});
  f[6] = std::byte{1};
  c->write(f);
  EXPECT_TRUE(c->closed_by_peer());
  EXPECT_TRUE(logs.wait_for({"'raw'", "reserved flags 1"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, reserved_hello_flags_are_rejected) {
  log_capture logs;
  raw_client c{GetParam().raw_connect(uri)};
  ASSERT_TRUE(c.read_frame());
  wire::hello h;
  h.pid = 4242;
  h.incarnation.fill(9);
  h.node_name = "flagged";
  h.flags = 32; // bits 0 to 4: can_resume, resume, hidden, probe, bulk
  std::vector<std::byte> body;
  wire_writer out{body};
  out(h);
  c.write(frame(frame_kind::hello, body));
  auto rej = c.read_frame();
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->header.kind, frame_kind::reject);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_TRUE(logs.wait_for({uri, "reserved hello flags 32"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, probes_are_answered_and_must_carry_a_token) {
  log_capture logs;
  auto c = handshaken();
  c->write(token_frame(frame_kind::probe, 0x1234567890abcdefu));
  auto f = c->read_frame();
  while (f && f->header.kind == frame_kind::heartbeat)
    f = c->read_frame();
  ASSERT_TRUE(f);
  ASSERT_EQ(f->header.kind, frame_kind::probe_reply);
  wire_reader in{f->body.data(), f->body.size()};
  uint64_t echoed = 0;
  in(echoed);
  EXPECT_EQ(echoed, 0x1234567890abcdefu);
  EXPECT_EQ(in.remaining(), 0u);
  // An answer to a probe the node never sent is ignored. This client did
  // not set hello bit 3, so the node sends it no probes at all.
  c->write(token_frame(frame_kind::probe_reply, 99));
  EXPECT_NE(raw_lookup(*c), 0u); // still served
  c->write(frame(frame_kind::probe, std::vector<std::byte>(3)));
  EXPECT_TRUE(c->closed_by_peer());
  EXPECT_TRUE(logs.wait_for({"'raw'", "malformed probe frame"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, only_the_answer_to_the_probe_outstanding_is_timed) {
  auto c = handshaken(8); // hello bit 3: this client answers probes
  auto next_probe = [&]() -> uint64_t {
    // One heartbeat interval (500 ms) at most; heartbeats are skipped.
    for (auto f = c->read_frame(); f; f = c->read_frame()) {
      if (f->header.kind != frame_kind::probe)
        continue;
      wire_reader in{f->body.data(), f->body.size()};
      uint64_t token = 0;
      in(token);
      return token;
    }
    return 0;
  };
  auto round_trips = [&] {
    for (auto& p : server->peers())
      if (p.name == "raw")
        return p.rtt.count;
    return uint64_t{0};
  };
  auto token = next_probe();
  ASSERT_NE(token, 0u);
  EXPECT_EQ(token & 1, 1u) << "tokens are odd";
  // Wrong tokens are ignored, and no second probe comes while one is
  // outstanding: only heartbeats.
  c->write(token_frame(frame_kind::probe_reply, token + 2));
  c->write(token_frame(frame_kind::probe_reply, 0));
  for (int i = 0; i < 2; ++i) {
    auto f = c->read_frame();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->header.kind, frame_kind::heartbeat);
  }
  EXPECT_EQ(round_trips(), 0u);
  // The right one is timed, once; the next tick probes again.
  c->write(token_frame(frame_kind::probe_reply, token));
  c->write(token_frame(frame_kind::probe_reply, token));
  auto second = next_probe();
  EXPECT_NE(second, 0u);
  EXPECT_NE(second, token);
  EXPECT_EQ(round_trips(), 1u);
  expect_good_round_trip();
}

TEST_P(bad_input, heartbeats_are_accepted_and_must_be_empty) {
  log_capture logs;
  auto c = handshaken();
  c->write(frame(frame_kind::heartbeat, {}));
  EXPECT_NE(raw_lookup(*c), 0u); // still served
  c->write(frame(frame_kind::heartbeat, std::vector<std::byte>(3)));
  EXPECT_TRUE(c->closed_by_peer());
  EXPECT_TRUE(logs.wait_for({"'raw'", "heartbeat with a body"})) << logs.dump();
  expect_good_round_trip();
}

TEST_P(bad_input, a_silent_peer_gets_heartbeats_then_is_closed) {
  log_capture logs;
  node_config cfg;
  cfg.cookie_file = server_cfg.cookie_file;
  cfg.node_name = "strict";
  GetParam().node_settings(cfg.content);
  cfg.heartbeat_interval = 50ms;
  cfg.heartbeat_timeout = 200ms;
  node strict{cfg};
  auto where = strict.listen(GetParam().listen_uri(dir.path(), "strict"));
  ASSERT_TRUE(where) << describe(where.error());
  raw_client c{GetParam().raw_connect(*where)};
  ASSERT_TRUE(c.read_frame()); // hello
  c.write(frame(frame_kind::hello, hello_body()));
  auto start = std::chrono::steady_clock::now();
  int heartbeats = 0;
  while (auto f = c.read_frame(2s)) {
    EXPECT_EQ(f->header.kind, frame_kind::heartbeat);
    EXPECT_EQ(f->header.length, 0u);
    ++heartbeats;
  }
  auto silent_for = std::chrono::steady_clock::now() - start;
  EXPECT_GE(heartbeats, 1);
  EXPECT_GE(silent_for, 200ms);
  EXPECT_LT(silent_for, 2s);
  EXPECT_TRUE(logs.wait_for({"'raw'", "heartbeat timeout"})) << logs.dump();
}

INSTANTIATE_TEST_SUITE_P(every_transport, bad_input,
                         ::testing::ValuesIn(all_transport_cases()),
                         [](const ::testing::TestParamInfo<transport_case>& info) {
                           return info.param.name;
                         });
