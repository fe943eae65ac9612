// The transport conformance suite: what every transport must do, run over
// real sockets against each entry of all_transport_cases() (uds, tcp, ...).
// Every wait is bounded and synchronised on an event; nothing sleeps.

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <future>
#include <string>
#include <tuple>
#include <thread>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "common/reactor.hpp"
#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"
#include "relay/error.hpp"
#include "transport_cases.hpp"
#include "transport_test_support.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

class conformance : public ::testing::TestWithParam<transport_case> {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/relay-conformance-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    io_ = std::make_shared<reactor>();
    transport_ = make_transport();
  }

  void TearDown() override {
    transport_.reset();
    if (!dir_.empty())
      std::filesystem::remove_all(dir_);
  }

  /// This case's transport, with `adjust` applied to its test options.
  std::unique_ptr<transport>
  make_transport(const std::function<void(transport_options&)>& adjust = {}) {
    transport_options opts;
    GetParam().configure(opts);
    if (adjust)
      adjust(opts);
    return GetParam().make(io_, std::move(opts));
  }

  caf::expected<std::unique_ptr<acceptor>> listen(const std::string& tag,
                                                  accept_callback cb) {
    auto result = transport_->listen(ep(GetParam().listen_uri(dir_, tag)),
                                     std::move(cb));
    EXPECT_TRUE(result) << str(result.error());
    return result;
  }

  /// A started client/server pair; `server_side` listens (default: ours).
  connected_pair make_pair(const std::string& tag, bool server_echo = false,
                           transport* server_side = nullptr) {
    return connect_pair(server_side ? *server_side : *transport_, *transport_,
                        GetParam().listen_uri(dir_, tag), accepted_, io_,
                        server_echo);
  }

  /// A listener, and a connection to it on both ends, neither started.
  std::tuple<std::unique_ptr<acceptor>, connection_ptr, connection_ptr>
  unstarted_pair(const std::string& tag) {
    auto listener = listen(tag, accepted_.callback());
    if (!listener)
      return {};
    auto client = transport_->connect(ep((*listener)->uri()));
    EXPECT_TRUE(client) << str(client.error());
    if (!client)
      return {};
    return {std::move(*listener), *client, accepted_.pop()};
  }

  std::string dir_;
  std::shared_ptr<reactor> io_;
  std::unique_ptr<transport> transport_;
  accept_queue accepted_;
};

TEST_P(conformance, round_trip_in_both_directions) {
  auto p = make_pair("rt");
  ASSERT_TRUE(p.client && p.server);
  ASSERT_FALSE(p.client->send(make_frame("ping")));
  ASSERT_TRUE(p.server_rec->wait_frames(1));
  auto in = p.server_rec->frames().at(0);
  EXPECT_EQ(in.header.kind, frame_kind::message);
  EXPECT_EQ(text_of(in.body), "ping");
  ASSERT_FALSE(p.server->send(make_frame("pong", frame_kind::lookup_reply)));
  ASSERT_TRUE(p.client_rec->wait_frames(1));
  auto out = p.client_rec->frames().at(0);
  EXPECT_EQ(out.header.kind, frame_kind::lookup_reply);
  EXPECT_EQ(text_of(out.body), "pong");
  // Empty bodies are frames too.
  ASSERT_FALSE(p.client->send(make_frame("")));
  ASSERT_TRUE(p.server_rec->wait_frames(2));
  EXPECT_TRUE(p.server_rec->frames().at(1).body.empty());
  // Peer names say where the connection goes, on both sides.
  EXPECT_TRUE(contains(p.client->peer_name(), p.listener->uri()))
    << p.client->peer_name();
  EXPECT_TRUE(contains(p.server->peer_name(), p.listener->uri()))
    << p.server->peer_name();
  EXPECT_FALSE(p.client_rec->misbehaved());
  EXPECT_FALSE(p.server_rec->misbehaved());
}

TEST_P(conformance, many_frames_from_many_threads_arrive_whole_and_in_order) {
  auto p = make_pair("many");
  ASSERT_TRUE(p.client && p.server);
  constexpr uint32_t senders = 4;
  constexpr uint32_t per_sender = 5000;
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < senders; ++t)
    threads.emplace_back([&, t] {
      for (uint32_t seq = 0; seq < per_sender; ++seq) {
        std::vector<uint8_t> body(8 + seq % 300, static_cast<uint8_t>(seq));
        std::memcpy(body.data(), &t, 4);
        std::memcpy(body.data() + 4, &seq, 4);
        if (p.client->send(make_frame(frame_kind::message, body.data(),
                                      body.size())))
          return;
      }
    });
  for (auto& th : threads)
    th.join();
  ASSERT_TRUE(p.server_rec->wait_frames(senders * per_sender));
  std::vector<uint32_t> next(senders, 0);
  for (auto& f : p.server_rec->frames()) {
    uint32_t t;
    uint32_t seq;
    ASSERT_GE(f.body.size(), 8u);
    std::memcpy(&t, f.body.data(), 4);
    std::memcpy(&seq, f.body.data() + 4, 4);
    ASSERT_LT(t, senders);
    ASSERT_EQ(seq, next[t]) << "sender " << t;
    ++next[t];
    ASSERT_EQ(f.body.size(), 8 + seq % 300);
    for (size_t i = 8; i < f.body.size(); ++i)
      ASSERT_EQ(std::to_integer<uint8_t>(f.body[i]), static_cast<uint8_t>(seq));
  }
}

TEST_P(conformance, big_frame_spans_many_reads_and_writes) {
  auto p = make_pair("big", /*server_echo=*/true);
  ASSERT_TRUE(p.client && p.server);
  std::vector<uint8_t> body(4 * 1024 * 1024);
  for (size_t i = 0; i < body.size(); ++i)
    body[i] = static_cast<uint8_t>(i * 7 + i / 4096);
  ASSERT_FALSE(p.client->send(make_frame(frame_kind::message, body.data(),
                                         body.size())));
  ASSERT_FALSE(p.client->send(make_frame("after")));
  ASSERT_TRUE(p.client_rec->wait_frames(2)); // echoed back by the server
  auto frames = p.client_rec->frames();
  ASSERT_EQ(frames[0].body.size(), body.size());
  EXPECT_EQ(std::memcmp(frames[0].body.data(), body.data(), body.size()), 0);
  EXPECT_EQ(text_of(frames[1].body), "after");
}

TEST_P(conformance, large_frames_arrive_whole_also_as_memory_files) {
  // Where the transport passes descriptors (uds, fd), frames from
  // stream_connection::bulk_threshold up now go as sealed memory files
  // (docs/wire-protocol.md 2.1); elsewhere allow_bulk changes nothing.
  auto p = make_pair("bulk", /*server_echo=*/true);
  ASSERT_TRUE(p.client && p.server);
  p.client->allow_bulk();
  p.server->allow_bulk();
  std::vector<size_t> sizes{stream_connection::bulk_threshold,
                            3 * 1024 * 1024, 100, 1024 * 1024};
  for (size_t n = 0; n < sizes.size(); ++n) {
    std::vector<uint8_t> body(sizes[n]);
    for (size_t i = 0; i < body.size(); ++i)
      body[i] = static_cast<uint8_t>(i * 7 + n);
    ASSERT_FALSE(p.client->send(make_frame(frame_kind::message, body.data(),
                                           body.size())));
  }
  ASSERT_TRUE(p.client_rec->wait_frames(sizes.size())); // echoed back
  auto frames = p.client_rec->frames();
  for (size_t n = 0; n < sizes.size(); ++n) {
    ASSERT_EQ(frames[n].body.size(), sizes[n]) << n;
    for (size_t i = 0; i < sizes[n]; ++i)
      ASSERT_EQ(std::to_integer<uint8_t>(frames[n].body[i]),
                static_cast<uint8_t>(i * 7 + n))
        << "frame " << n << ", byte " << i;
  }
  EXPECT_FALSE(p.server_rec->misbehaved());
  EXPECT_FALSE(p.client_rec->misbehaved());
}

TEST_P(conformance, paused_reading_backs_up_large_frames_too) {
  // A peer that reads nothing holds at most a few memory files
  // (stream_connection::max_files_in_flight); the rest queue at the sender,
  // where relay.max-queued-bytes can see them, instead of disappearing
  // into the socket as small bulk frames.
  auto p = make_pair("bulkpause");
  ASSERT_TRUE(p.client && p.server);
  p.client->allow_bulk();
  p.server->pause_reading(true);
  constexpr uint32_t count = 48; // 24 MiB: loopback tcp buffers ~10
  std::vector<uint8_t> body(512 * 1024);
  for (uint32_t seq = 0; seq < count; ++seq) {
    std::memcpy(body.data(), &seq, 4);
    ASSERT_FALSE(p.client->send(make_frame(frame_kind::message, body.data(),
                                           body.size())));
  }
  EXPECT_GT(p.client->traffic().queued_bytes, 0u)
    << "the paused server took every frame";
  p.server->pause_reading(false);
  ASSERT_TRUE(p.server_rec->wait_frames(count));
  uint32_t next = 0;
  for (auto& f : p.server_rec->frames()) {
    ASSERT_EQ(f.body.size(), body.size());
    uint32_t seq;
    std::memcpy(&seq, f.body.data(), 4);
    ASSERT_EQ(seq, next++);
  }
  EXPECT_EQ(p.client->traffic().queued_bytes, 0u);
  EXPECT_FALSE(p.server_rec->misbehaved());
}

TEST_P(conformance, frame_over_the_bound_closes_with_frame_too_large) {
  auto strict = make_transport([](transport_options& opts) {
    opts.max_frame_body = 1024;
  });
  auto p = make_pair("bound", false, strict.get());
  ASSERT_TRUE(p.client && p.server);
  // The sender refuses what its own bound forbids, without closing.
  auto refused = p.server->send(make_frame(std::string(1025, 'x')));
  EXPECT_TRUE(is(refused, errc::frame_too_large)) << str(refused);
  ASSERT_FALSE(p.client->send(make_frame(std::string(1024, 'a'))));
  ASSERT_FALSE(p.client->send(make_frame(std::string(2048, 'b'))));
  ASSERT_TRUE(p.server_rec->wait_closed());
  EXPECT_EQ(p.server_rec->frames().size(), 1u);
  auto reason = p.server_rec->reason();
  EXPECT_TRUE(is(reason, errc::frame_too_large)) << str(reason);
  EXPECT_TRUE(contains(str(reason), "2048")) << str(reason);
  EXPECT_TRUE(contains(str(reason), "bound of 1024")) << str(reason);
  EXPECT_TRUE(contains(str(reason), p.listener->uri())) << str(reason);
  ASSERT_TRUE(p.client_rec->wait_closed());
  EXPECT_TRUE(is(p.client_rec->reason(), errc::connection_closed));
  EXPECT_EQ(p.server_rec->closed_count(), 1);
}

TEST_P(conformance, bad_magic_closes_with_protocol_error) {
  auto listener = listen("magic", accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  auto raw = GetParam().raw_connect((*listener)->uri());
  ASSERT_TRUE(raw);
  auto server = accepted_.pop();
  ASSERT_NE(server, nullptr);
  auto rec = std::make_shared<recorder>(io_);
  server->start(rec);
  std::byte bytes[frame_header::size];
  frame_header bogus;
  bogus.magic = 0xdeadbeef;
  bogus.write(bytes);
  ASSERT_TRUE(write_all(raw.get(), bytes, sizeof(bytes)));
  ASSERT_TRUE(rec->wait_closed());
  EXPECT_TRUE(is(rec->reason(), errc::protocol_error)) << str(rec->reason());
  EXPECT_TRUE(contains(str(rec->reason()), "bad magic 0xdeadbeef"));
  EXPECT_TRUE(contains(str(rec->reason()), (*listener)->uri()));
  EXPECT_TRUE(rec->frames().empty());
  // The server closed its end: the raw peer sees it.
  char c;
  EXPECT_LE(::read(raw.get(), &c, 1), 0);
}

TEST_P(conformance, peer_closing_mid_frame_is_reported) {
  auto listener = listen("mid", accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  { // inside the body
    auto raw = GetParam().raw_connect((*listener)->uri());
    ASSERT_TRUE(raw);
    auto server = accepted_.pop();
    ASSERT_NE(server, nullptr);
    auto rec = std::make_shared<recorder>(io_);
    server->start(rec);
    auto frame = make_frame(std::string(100, 'z'));
    ASSERT_TRUE(write_all(raw.get(), frame.data(), frame_header::size + 40));
    raw.reset();
    ASSERT_TRUE(rec->wait_closed());
    EXPECT_TRUE(is(rec->reason(), errc::connection_closed));
    EXPECT_TRUE(contains(str(rec->reason()),
                         "peer closed mid-frame (got 52 of 112 bytes)"))
      << str(rec->reason());
  }
  { // inside the header
    auto raw = GetParam().raw_connect((*listener)->uri());
    ASSERT_TRUE(raw);
    auto server = accepted_.pop();
    ASSERT_NE(server, nullptr);
    auto rec = std::make_shared<recorder>(io_);
    server->start(rec);
    auto frame = make_frame("x");
    ASSERT_TRUE(write_all(raw.get(), frame.data(), 5));
    raw.reset();
    ASSERT_TRUE(rec->wait_closed());
    EXPECT_TRUE(contains(str(rec->reason()),
                         "peer closed mid-frame (got 5 of 12 header bytes)"))
      << str(rec->reason());
  }
}

TEST_P(conformance, close_is_reported_once_on_both_sides) {
  auto p = make_pair("close");
  ASSERT_TRUE(p.client && p.server);
  auto why = make_error(errc::connection_closed, "test says bye");
  p.client->close(why);
  p.client->close(make_error(errc::protocol_error, "second close is ignored"));
  ASSERT_TRUE(p.client_rec->wait_closed());
  EXPECT_EQ(p.client_rec->reason(), why);
  ASSERT_TRUE(p.server_rec->wait_closed());
  EXPECT_TRUE(is(p.server_rec->reason(), errc::connection_closed));
  EXPECT_TRUE(contains(str(p.server_rec->reason()), "peer closed the connection"))
    << str(p.server_rec->reason());
  auto late = p.client->send(make_frame("late"));
  EXPECT_TRUE(is(late, errc::connection_closed)) << str(late);
  p.server->close(caf::none);
  // on_closed must not come twice; give the reactor a full turn to prove it.
  std::promise<void> turn;
  io_->dispatch([&] { turn.set_value(); });
  ASSERT_EQ(turn.get_future().wait_for(wait_bound), std::future_status::ready);
  EXPECT_EQ(p.client_rec->closed_count(), 1);
  EXPECT_EQ(p.server_rec->closed_count(), 1);
  EXPECT_FALSE(p.client_rec->misbehaved());
  EXPECT_FALSE(p.server_rec->misbehaved());
}

TEST_P(conformance, frames_sent_before_start_arrive_after_start) {
  auto [listener, client, server] = unstarted_pair("early");
  ASSERT_TRUE(client && server);
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(server->send(make_frame("s" + std::to_string(i))));
    ASSERT_FALSE(client->send(make_frame("c" + std::to_string(i))));
  }
  auto client_rec = std::make_shared<recorder>(io_);
  auto server_rec = std::make_shared<recorder>(io_);
  client->start(client_rec);
  server->start(server_rec);
  ASSERT_TRUE(client_rec->wait_frames(3));
  ASSERT_TRUE(server_rec->wait_frames(3));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(text_of(client_rec->frames()[i].body), "s" + std::to_string(i));
    EXPECT_EQ(text_of(server_rec->frames()[i].body), "c" + std::to_string(i));
  }
  // A close before start is reported after start.
  auto unstarted = transport_->connect(ep(listener->uri()));
  ASSERT_TRUE(unstarted);
  auto why = make_error(errc::connection_closed, "closed before start");
  (*unstarted)->close(why);
  auto rec = std::make_shared<recorder>(io_);
  (*unstarted)->start(rec);
  ASSERT_TRUE(rec->wait_closed());
  EXPECT_EQ(rec->reason(), why);
}

TEST_P(conformance, close_with_flush_sends_queued_frames_first) {
  auto [listener, client, server] = unstarted_pair("flush");
  ASSERT_TRUE(client && server);
  auto client_rec = std::make_shared<recorder>(io_);
  client->start(client_rec);
  // The server does not read yet, so most of this stays queued.
  std::string big(3 * 1024 * 1024, 'q');
  ASSERT_FALSE(client->send(make_frame(big)));
  ASSERT_FALSE(client->send(make_frame("last")));
  auto why = make_error(errc::connection_closed, "done sending");
  client->close(why, /*flush=*/true);
  EXPECT_TRUE(is(client->send(make_frame("too late")), errc::connection_closed));
  auto server_rec = std::make_shared<recorder>(io_);
  server->start(server_rec);
  ASSERT_TRUE(server_rec->wait_frames(2));
  EXPECT_EQ(server_rec->frames()[0].body.size(), big.size());
  EXPECT_EQ(text_of(server_rec->frames()[1].body), "last");
  ASSERT_TRUE(client_rec->wait_closed());
  EXPECT_EQ(client_rec->reason(), why);
  ASSERT_TRUE(server_rec->wait_closed());
  EXPECT_TRUE(is(server_rec->reason(), errc::connection_closed));
}

TEST_P(conformance, paused_reading_backs_up_the_sender_and_resumes_in_order) {
  auto p = make_pair("pause");
  ASSERT_TRUE(p.client && p.server);
  p.server->pause_reading(true);
  // More than any socket buffer or ring holds: the rest must queue at the
  // client, because the server reads nothing.
  constexpr uint32_t count = 24000; // 24 MiB: loopback tcp buffers ~10
  std::vector<uint8_t> body(1024);
  for (uint32_t seq = 0; seq < count; ++seq) {
    std::memcpy(body.data(), &seq, 4);
    ASSERT_FALSE(p.client->send(make_frame(frame_kind::message, body.data(),
                                           body.size())));
  }
  auto queued = p.client->traffic().queued_bytes;
  EXPECT_GT(queued, 0u) << "the paused server read everything";
  EXPECT_LT(p.server_rec->frames().size(), size_t{count});
  p.server->pause_reading(false);
  ASSERT_TRUE(p.server_rec->wait_frames(count));
  uint32_t next = 0;
  for (auto& f : p.server_rec->frames()) {
    uint32_t seq;
    std::memcpy(&seq, f.body.data(), 4);
    ASSERT_EQ(seq, next++);
  }
  EXPECT_FALSE(p.server_rec->misbehaved());
}

TEST_P(conformance, a_hang_up_while_paused_comes_after_the_frames_sent_before_it) {
  auto p = make_pair("pause-hup");
  ASSERT_TRUE(p.client && p.server);
  p.server->pause_reading(true);
  for (int i = 0; i < 5; ++i)
    ASSERT_FALSE(p.client->send(make_frame("frame " + std::to_string(i))));
  p.client->close(make_error(errc::connection_closed, "done"), /*flush=*/true);
  ASSERT_TRUE(p.client_rec->wait_closed());
  // The peer is gone, but nothing is read while paused, not even that.
  EXPECT_EQ(p.server_rec->closed_count(), 0);
  p.server->pause_reading(false);
  ASSERT_TRUE(p.server_rec->wait_closed());
  auto frames = p.server_rec->frames();
  ASSERT_EQ(frames.size(), 5u);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(text_of(frames[i].body), "frame " + std::to_string(i));
  EXPECT_TRUE(is(p.server_rec->reason(), errc::connection_closed));
  EXPECT_FALSE(p.server_rec->misbehaved());
}

TEST_P(conformance, close_with_flush_is_bounded_when_the_peer_never_reads) {
  auto [listener, client, server] = unstarted_pair("stuck"); // never started: never reads
  ASSERT_TRUE(client && server);
  auto client_rec = std::make_shared<recorder>(io_);
  client->start(client_rec);
  ASSERT_FALSE(client->send(make_frame(std::string(8 * 1024 * 1024, 's'))));
  auto why = make_error(errc::connection_closed, "giving up");
  auto begin = std::chrono::steady_clock::now();
  client->close(why, /*flush=*/true);
  ASSERT_TRUE(client_rec->wait_closed());
  EXPECT_GE(std::chrono::steady_clock::now() - begin,
            stream_connection::close_flush_timeout - 100ms);
  EXPECT_EQ(client_rec->reason(), why);
}

TEST_P(conformance, peer_vanishing_while_we_write_is_reported) {
  auto [listener, client, server] = unstarted_pair("vanish");
  ASSERT_TRUE(client && server);
  auto client_rec = std::make_shared<recorder>(io_);
  client->start(client_rec);
  ASSERT_FALSE(client->send(make_frame(std::string(8 * 1024 * 1024, 'v'))));
  server.reset(); // the server drops the connection unread
  ASSERT_TRUE(client_rec->wait_closed());
  EXPECT_TRUE(is(client_rec->reason(), errc::connection_closed))
    << str(client_rec->reason());
  EXPECT_TRUE(contains(str(client_rec->reason()), listener->uri()));
}

TEST_P(conformance, send_rejects_malformed_frames) {
  auto p = make_pair("malformed");
  ASSERT_TRUE(p.client && p.server);
  EXPECT_TRUE(is(p.client->send(frame_buffer(3)), errc::invalid_argument));
  auto frame = make_frame("abc");
  frame.push_back(std::byte{0});
  EXPECT_TRUE(is(p.client->send(frame), errc::invalid_argument));
  frame_buffer bogus(frame_header::size);
  EXPECT_TRUE(is(p.client->send(bogus), errc::invalid_argument));
  // Still usable afterwards.
  ASSERT_FALSE(p.client->send(make_frame("fine")));
  ASSERT_TRUE(p.server_rec->wait_frames(1));
}

TEST_P(conformance, sixty_four_concurrent_connections) {
  constexpr int peers = 64;
  auto echo = std::make_shared<recorder>(io_, /*echo=*/true);
  std::vector<connection_ptr> servers;
  std::mutex servers_mtx;
  auto listener = listen("many", [&](connection_ptr c) {
    c->start(echo);
    std::lock_guard<std::mutex> guard{servers_mtx};
    servers.push_back(std::move(c));
  });
  ASSERT_TRUE(listener) << str(listener.error());
  std::vector<std::future<std::string>> results;
  for (int i = 0; i < peers; ++i)
    results.push_back(std::async(std::launch::async, [&, i]() -> std::string {
      auto conn = transport_->connect(ep((*listener)->uri()));
      if (!conn)
        return "connect: " + str(conn.error());
      auto rec = std::make_shared<recorder>(io_);
      (*conn)->start(rec);
      auto text = "peer " + std::to_string(i);
      if (auto err = (*conn)->send(make_frame(text)))
        return "send: " + str(err);
      if (!rec->wait_frames(1))
        return "no echo";
      auto got = text_of(rec->frames()[0].body);
      (*conn)->close(caf::none);
      if (!rec->wait_closed())
        return "no on_closed";
      return got == text ? "" : "wrong echo " + got;
    }));
  for (auto& r : results) {
    ASSERT_EQ(r.wait_for(wait_bound), std::future_status::ready);
    EXPECT_EQ(r.get(), "");
  }
  EXPECT_TRUE(echo->wait_frames(peers));
  std::lock_guard<std::mutex> guard{servers_mtx};
  EXPECT_EQ(servers.size(), static_cast<size_t>(peers));
}

TEST(conformance_cases, cover_every_built_in_transport) {
  transport_registry reg;
  register_builtin_transports(reg, transport_options{});
  std::vector<std::string> covered;
  for (auto& c : all_transport_cases())
    covered.push_back(c.name);
  // fd and pipe adopt one pre-connected channel: there is no listener to
  // dial twice. They have their own suite (inherited_transport_test) and
  // run under the node in process_child_test and relay_run_test.
  covered.push_back("fd");
  covered.push_back("pipe");
  for (auto& scheme : reg.schemes())
    EXPECT_NE(std::find(covered.begin(), covered.end(), scheme), covered.end())
      << scheme << " has no conformance case (tests/support/transport_cases.hpp)";
}

INSTANTIATE_TEST_SUITE_P(every_transport, conformance,
                         ::testing::ValuesIn(all_transport_cases()),
                         [](const ::testing::TestParamInfo<transport_case>& info) {
                           return info.param.name;
                         });

} // namespace
