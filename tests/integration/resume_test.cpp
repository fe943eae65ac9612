// Sessions that survive broken connections (relay.resume): two nodes in this
// process over real sockets, joined through a loopback proxy that cuts
// every connection through it on command. Over tcp (cut with a reset) and
// uds (both ends closed).

#include <algorithm>
#include <fstream>
#include <random>
#include <thread>

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "cut_proxy.hpp"
#include "relay/node.hpp"
#include "test_support.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

using sync_atom = caf::atom_constant<caf::atom("sync")>;

/// Checks a stream of numbers 0, 1, 2, ...: each exactly once, in order.
/// (sync) answers (next expected number, numbers out of place so far).
struct sink_state {
  uint64_t next = 0;
  uint64_t misplaced = 0;
};

caf::behavior sink(caf::stateful_actor<sink_state>* self) {
  return {
    [=](uint64_t x) {
      if (x != self->state.next)
        ++self->state.misplaced;
      self->state.next = x + 1;
    },
    [=](sync_atom) {
      return caf::make_message(self->state.next, self->state.misplaced);
    },
  };
}

// Messages in the stream; RELAY_RESUME_COUNT overrides (the figure
// is the default).
uint64_t stream_length() {
  if (auto env = std::getenv("RELAY_RESUME_COUNT"))
    return std::stoull(env);
  return 1'000'000;
}

class resume : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    auto cookie = dir.path() + "/cookie";
    std::ofstream{cookie} << "resume-test-secret-0123456789abcdef\n";
    ::chmod(cookie.c_str(), 0600);
    for (auto* cfg : {&server_cfg, &client_cfg}) {
      cfg->cookie_file = cookie;
      cfg->heartbeat_interval = 250ms;
      cfg->heartbeat_timeout = 3s;
    }
    server_cfg.node_name = "server";
    client_cfg.node_name = "client";
  }

  void start(bool with_proxy = true,
             trust_level trust = trust_level::trusted) {
    server = std::make_unique<node>(server_cfg);
    client = std::make_unique<node>(client_cfg);
    target = server->system().spawn(sink);
    ASSERT_FALSE(server->publish(target, "sink"));
    auto where = uds() ? "uds://" + dir.path() + "/server.sock"
                       : std::string{"tcp://127.0.0.1:0"};
    auto open = server->listen(where, trust);
    ASSERT_TRUE(open) << describe(open.error());
    server_uri = *open;
    if (with_proxy) {
      auto target_address = uds() ? dir.path() + "/server.sock"
                                  : server_uri.substr(server_uri.rfind('/') + 1);
      proxy = std::make_unique<cut_proxy>(uds(), target_address,
                                          dir.path() + "/proxy.sock");
    }
  }

  void TearDown() override {
    if (target)
      caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
    client.reset();
    server.reset();
    proxy.reset();
  }

  bool uds() const {
    return GetParam() == "uds";
  }

  /// Asks the sink where the stream stands.
  std::pair<uint64_t, uint64_t> sync(caf::scoped_actor& self,
                                     const caf::actor& remote) {
    std::pair<uint64_t, uint64_t> result{0, 0};
    self->request(remote, 30s, sync_atom::value)
      .receive([&](uint64_t next,
                   uint64_t misplaced) { result = {next, misplaced}; },
               [&](caf::error& err) {
                 ADD_FAILURE() << "sync failed: " << describe(err);
               });
    return result;
  }

  temp_dir dir;
  node_config server_cfg;
  node_config client_cfg;
  std::unique_ptr<node> server;
  std::unique_ptr<node> client;
  std::unique_ptr<cut_proxy> proxy;
  caf::actor target;
  std::string server_uri;
};

// The test: a stream of numbered messages with a request after
// every window, while the proxy cuts the connection at random points; the
// sink must see each number exactly once and in order, no DOWN may arrive,
// and nothing may be dropped.
TEST_P(resume, a_stream_survives_random_cuts) {
  start();
  log_capture logs;
  auto remote = client->lookup(proxy->uri(), "sink");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  self->monitor(*remote);
  const uint64_t total = stream_length();
  constexpr uint64_t window = 2000;
  std::atomic<bool> done{false};
  std::atomic<size_t> cuts{0};
  std::thread cutter{[&] {
    std::minstd_rand rng{std::random_device{}()};
    std::uniform_int_distribution<int> pause_ms{2, 60};
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds{pause_ms(rng)});
      if (proxy->cut() > 0)
        ++cuts;
    }
  }};
  uint64_t sent = 0;
  uint64_t synced = 0;
  while (sent < total) {
    auto end = std::min(total, sent + window);
    for (; sent < end; ++sent)
      self->send(*remote, sent);
    // Request/response traffic across the cuts too.
    auto [next, misplaced] = sync(self, *remote);
    if (next != sent || misplaced != 0) {
      ADD_FAILURE() << "after " << sent << " sent, the sink expects " << next
                    << " and saw " << misplaced << " out of place";
      break;
    }
    synced = next;
  }
  done = true;
  cutter.join();
  EXPECT_EQ(synced, total);
  // At least a few cuts happened mid-stream (a cut every 2-60 ms).
  EXPECT_GE(cuts.load(), 5u);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; }, caf::after(0ms) >> [] {});
  EXPECT_FALSE(down) << "a proxy reported DOWN";
  for (auto* n : {client.get(), server.get()}) {
    auto st = n->stats();
    EXPECT_EQ(st.dropped_messages, 0u);
    EXPECT_EQ(st.lost_sessions, 0u);
  }
  auto resumed = client->stats().resumed_sessions;
  EXPECT_GE(resumed, 1u);
  // How long the client's sessions stayed broken ("resumed the session
  // with 'server' ... after N ms").
  std::vector<int> gaps;
  for (auto& line : logs.lines())
    if (auto at = line.find("resumed the session with 'server'");
        at != std::string::npos)
      if (auto after = line.find(" after ", at); after != std::string::npos)
        gaps.push_back(std::stoi(line.substr(after + 7)));
  std::sort(gaps.begin(), gaps.end());
  auto pct = [&](double q) {
    return gaps.empty() ? -1 : gaps[static_cast<size_t>(q * (gaps.size() - 1))];
  };
  std::cout << "[ figures  ] " << GetParam() << ": " << total
            << " messages, " << cuts.load() << " cuts, " << resumed
            << " resumed sessions, " << proxy->accepted()
            << " connections through the proxy; broken for p50 " << pct(0.5)
            << " ms, p99 " << pct(0.99) << " ms, max " << pct(1.0)
            << " ms\n";
}

// No resume within relay.heartbeat-timeout (the proxy is gone, so redials
// fail): the node is lost as on a close, requests fail, DOWN arrives.
TEST_P(resume, a_break_that_outlasts_the_timeout_loses_the_node) {
  for (auto* cfg : {&server_cfg, &client_cfg})
    cfg->heartbeat_timeout = 1s;
  start();
  auto remote = client->lookup(proxy->uri(), "sink");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  self->monitor(*remote);
  ASSERT_EQ(sync(self, *remote).first, 0u);
  auto broke = std::chrono::steady_clock::now();
  proxy.reset(); // cuts and refuses from now on
  // A request sent into the broken connection waits for the resume, then
  // fails when the session is given up.
  caf::error failed;
  self->request(*remote, 30s, sync_atom::value)
    .receive([](uint64_t, uint64_t) {}, [&](caf::error& err) { failed = err; });
  EXPECT_TRUE(is(failed, errc::node_unreachable)) << describe(failed);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(10s) >> [] {});
  EXPECT_TRUE(down);
  auto took = std::chrono::steady_clock::now() - broke;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 5s);
  EXPECT_EQ(client->stats().lost_sessions, 1u);
}

// A node that shuts down says goodbye: its peers report it down at once,
// not after the resume window.
TEST_P(resume, a_goodbye_is_final_at_once) {
  for (auto* cfg : {&server_cfg, &client_cfg})
    cfg->heartbeat_timeout = 20s;
  start(false);
  auto remote = client->lookup(server_uri, "sink");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  self->monitor(*remote);
  ASSERT_EQ(sync(self, *remote).first, 0u);
  auto closed = std::chrono::steady_clock::now();
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
  target = nullptr;
  server.reset();
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(10s) >> [] {});
  EXPECT_TRUE(down);
  EXPECT_LT(std::chrono::steady_clock::now() - closed, 5s);
  EXPECT_EQ(client->stats().lost_sessions, 0u);
}

// The node at the address restarted while the connection was broken: the
// redial reaches a new incarnation, and the old one is lost at once.
TEST_P(resume, a_new_incarnation_is_lost_at_once) {
  for (auto* cfg : {&server_cfg, &client_cfg})
    cfg->heartbeat_timeout = 20s;
  start();
  auto remote = client->lookup(proxy->uri(), "sink");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  self->monitor(*remote);
  ASSERT_EQ(sync(self, *remote).first, 0u);
  // Cut first, so that the old server's goodbye never arrives; the proxy
  // refuses while the server restarts.
  log_capture logs;
  proxy->hold(true);
  proxy->cut();
  ASSERT_TRUE(logs.wait_for({"broke"}, 10s)) << logs.dump();
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
  target = nullptr;
  server.reset();
  auto restarted = std::chrono::steady_clock::now();
  // The new incarnation at the same address.
  server = std::make_unique<node>(server_cfg);
  auto open = server->listen(server_uri);
  ASSERT_TRUE(open) << describe(open.error());
  proxy->hold(false);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(15s) >> [] {});
  EXPECT_TRUE(down);
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, 5s)
    << "the resume window is 20 s; the new incarnation should end it";
  EXPECT_TRUE(logs.wait_for({"restarted"}, 1s)) << logs.dump();
}

// The server does not see the break (the proxy keeps its end open): the
// client's resuming hello finds the old connection still open there, which
// the server then closes as broken (resume_pending), and the client's next
// attempt resumes.
TEST_P(resume, a_half_open_connection_is_replaced_by_the_resume) {
  start();
  log_capture logs;
  auto remote = client->lookup(proxy->uri(), "sink");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  self->monitor(*remote);
  for (uint64_t i = 0; i < 1000; ++i)
    self->send(*remote, i);
  ASSERT_EQ(sync(self, *remote).first, 1000u);
  ASSERT_EQ(proxy->cut(true), 1u);
  for (uint64_t i = 1000; i < 2000; ++i)
    self->send(*remote, i);
  auto [next, misplaced] = sync(self, *remote);
  EXPECT_EQ(next, 2000u);
  EXPECT_EQ(misplaced, 0u);
  EXPECT_TRUE(logs.wait_for({"replaced by a resuming connection"}, 1s))
    << logs.dump();
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; }, caf::after(0ms) >> [] {});
  EXPECT_FALSE(down);
  EXPECT_GE(server->stats().resumed_sessions, 1u);
}

// While the connection is broken, what does not fit in relay.resume-buffer
// is refused (counted drops for asynchronous messages); everything kept is
// delivered, in order, after the resume: delivered + dropped = sent.
TEST_P(resume, a_full_resend_buffer_refuses_and_counts) {
  client_cfg.resume_buffer = 64 * 1024;
  start();
  auto remote = client->lookup(proxy->uri(), "sink");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  self->monitor(*remote);
  ASSERT_EQ(sync(self, *remote).first, 0u);
  log_capture logs;
  proxy->hold(true);
  proxy->cut();
  // The client's side must have seen the break: before, sends go into the
  // dying connection, past the bound evict the oldest frames, and the
  // session could not resume.
  ASSERT_TRUE(logs.wait_for({"connection to 'server'", "broke"}, 5s))
    << logs.dump();
  // ~90 bytes per message on the wire: 20,000 of them cannot all fit.
  constexpr uint64_t sent = 20000;
  for (uint64_t i = 0; i < sent; ++i)
    self->send(*remote, i);
  auto dropped = client->stats().dropped_messages;
  EXPECT_GT(dropped, 0u);
  EXPECT_LT(dropped, sent);
  proxy->hold(false);
  // Until the resume the ring is full: the sync request would be refused.
  ASSERT_TRUE(logs.wait_for({"resumed the session with 'server'"}, 5s))
    << logs.dump();
  auto [next, misplaced] = sync(self, *remote);
  // The sink saw the kept prefix in order (then gaps counted as misplaced
  // would mean reordering or loss inside what was kept).
  EXPECT_EQ(next, sent - dropped);
  EXPECT_EQ(misplaced, 0u);
  EXPECT_EQ(client->stats().overload_drops, dropped);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; }, caf::after(0ms) >> [] {});
  EXPECT_FALSE(down);
}

// Peers of an untrusted listener get no session: a break loses the node at
// once, as before sessions.
TEST_P(resume, untrusted_peers_have_no_session) {
  for (auto* cfg : {&server_cfg, &client_cfg})
    cfg->heartbeat_timeout = 20s;
  start(true, trust_level::untrusted);
  auto remote = client->lookup(proxy->uri(), "sink");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  self->monitor(*remote);
  ASSERT_EQ(sync(self, *remote).first, 0u);
  auto cut = std::chrono::steady_clock::now();
  proxy->cut();
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(10s) >> [] {});
  EXPECT_TRUE(down);
  EXPECT_LT(std::chrono::steady_clock::now() - cut, 5s);
  EXPECT_EQ(client->stats().resumed_sessions, 0u);
}

INSTANTIATE_TEST_SUITE_P(transports, resume, ::testing::Values("tcp", "uds"),
                         [](const auto& info) { return info.param; });

} // namespace
