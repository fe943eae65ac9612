// The etcd backend's session (lease, keep-alive, writes, watch) against a
// real etcd-server on loopback, in one process, so that the sanitizer run
// covers its threads. Its sink is a scoped actor that receives what the
// cluster actor would; every wait is bounded.

#include "etcd_session.hpp"

#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "etcd_client.hpp"
#include "etcd_server.hpp"
#include "relay/error.hpp"

using namespace std::chrono_literals;
using namespace relay::cluster_detail;

namespace {

caf::node_id make_id(uint8_t seed) {
  caf::node_id::default_data::host_id_type host{};
  for (size_t i = 0; i < host.size(); ++i)
    host[i] = static_cast<uint8_t>(seed * 31 + i + 1);
  return caf::make_node_id(2000 + seed, host);
}

class etcd_session_test : public testing::Test {
protected:
  static void SetUpTestSuite() {
    server_ = new relay::test::etcd_server;
  }

  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // A session of member `name` under this test's own prefix.
  std::unique_ptr<etcd_session> session(uint8_t seed, const std::string& name,
                                        std::chrono::seconds ttl = 2s) {
    etcd_settings cfg;
    cfg.endpoints = {server_->url()};
    cfg.prefix = prefix;
    cfg.lease_ttl = ttl;
    cfg.timeout = 500ms;
    relay::member_info self;
    self.node = make_id(seed);
    self.name = name;
    self.address = "tcp://127.0.0.1:" + std::to_string(5000 + seed);
    return std::make_unique<etcd_session>(cfg, "c", self);
  }

  // Receives until a message of type T arrives (others are skipped).
  template <class T>
  std::optional<T> next(std::chrono::seconds bound = 5s) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    std::optional<T> result;
    while (!result && std::chrono::steady_clock::now() < deadline)
      sink->receive([&](T& x) { result = std::move(x); },
                    [](etcd_update&) {}, [](etcd_opened&) {},
                    [](etcd_announced&) {}, [](etcd_row_written&) {},
                    [](etcd_downed&) {}, [](etcd_lost&) {},
                    [](etcd_claimed&) {}, caf::after(bound) >> [] {});
    return result;
  }

  std::string prefix = std::string{"/s/"}
                       + testing::UnitTest::GetInstance()
                           ->current_test_info()
                           ->name()
                       + "/";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor sink{sys};

  static relay::test::etcd_server* server_;
};

relay::test::etcd_server* etcd_session_test::server_ = nullptr;

} // namespace

TEST_F(etcd_session_test, a_member_joins_writes_its_row_and_leaves) {
  auto s = session(1, "a");
  s->open(caf::actor_cast<caf::actor>(sink));
  auto opened = next<etcd_opened>();
  ASSERT_TRUE(opened);
  ASSERT_FALSE(opened->error) << relay::describe(opened->error);
  auto first = next<etcd_update>();
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->full);
  EXPECT_TRUE(first->present.empty());
  s->announce(relay::member_status::up);
  // The acknowledgement and the watch's echo come in either order.
  std::optional<etcd_announced> announced;
  std::optional<etcd_update> up;
  for (int i = 0; i < 2; ++i)
    sink->receive([&](etcd_announced& x) { announced = x; },
                  [&](etcd_update& x) { up = std::move(x); },
                  caf::after(5s) >> [] {});
  ASSERT_TRUE(announced);
  EXPECT_FALSE(announced->error);
  ASSERT_TRUE(up);
  ASSERT_EQ(up->changes.size(), 1u);
  EXPECT_EQ(up->changes[0].kind, etcd_change::type::member);
  EXPECT_EQ(up->changes[0].member.name, "a");
  EXPECT_EQ(up->changes[0].member.status, relay::member_status::up);
  observation_row row;
  row.observer = make_id(1);
  row.version = 3;
  row.unreachable = {make_id(2)};
  s->put_row(row);
  // The acknowledgement and the watch's echo come in either order.
  std::optional<etcd_row_written> written;
  std::optional<etcd_update> rows;
  for (int i = 0; i < 2; ++i)
    sink->receive([&](etcd_row_written& x) { written = x; },
                  [&](etcd_update& x) { rows = std::move(x); },
                  caf::after(5s) >> [] {});
  ASSERT_TRUE(written);
  EXPECT_EQ(written->version, 3u);
  EXPECT_FALSE(written->error);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->changes.size(), 1u);
  EXPECT_EQ(rows->changes[0].kind, etcd_change::type::row);
  EXPECT_EQ(rows->changes[0].row.unreachable, row.unreachable);
  // Leaving: "left", then the key goes with the lease.
  s->announce(relay::member_status::left);
  s->revoke();
  std::vector<etcd_change::type> kinds;
  while (kinds.size() < 2) {
    auto u = next<etcd_update>();
    ASSERT_TRUE(u);
    for (auto& c : u->changes)
      kinds.push_back(c.kind);
  }
  EXPECT_EQ(kinds[0], etcd_change::type::member);
  EXPECT_EQ(kinds[1], etcd_change::type::member_gone);
}

TEST_F(etcd_session_test, names_are_transactions_under_the_lease) {
  auto a = session(1, "a");
  auto b = session(2, "b");
  a->open(caf::actor_cast<caf::actor>(sink));
  ASSERT_TRUE(next<etcd_opened>());
  b->open(caf::actor_cast<caf::actor>(sink));
  ASSERT_TRUE(next<etcd_opened>());
  auto holder_a = sys.spawn([] { return caf::behavior{[](int) {}}; });
  auto holder_b = sys.spawn([] { return caf::behavior{[](int) {}}; });
  a->claim_name("svc", holder_a, caf::actor_cast<caf::actor>(sink), 1);
  auto first = next<etcd_claimed>();
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->error) << relay::describe(first->error);
  b->claim_name("svc", holder_b, caf::actor_cast<caf::actor>(sink), 2);
  auto second = next<etcd_claimed>();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->request, 2u);
  EXPECT_TRUE(relay::is(second->error, relay::errc::already_registered));
  EXPECT_NE(relay::describe(second->error).find("held by actor"),
            std::string::npos);
  // Claiming what is already ours (a retried transaction) succeeds.
  a->claim_name("svc", holder_a, caf::actor_cast<caf::actor>(sink), 3);
  auto again = next<etcd_claimed>();
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->error);
  // a's lease goes, and the name with it.
  a->revoke();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  caf::error last;
  do {
    b->claim_name("svc", holder_b, caf::actor_cast<caf::actor>(sink), 4);
    auto x = next<etcd_claimed>();
    ASSERT_TRUE(x);
    last = x->error;
  } while (last && std::chrono::steady_clock::now() < deadline);
  EXPECT_FALSE(last) << relay::describe(last);
  b->release_name("svc", holder_b);
  b->stop(); // the release ran first (one worker, in order)
  etcd_client check{{server_->url()}, 2000ms};
  auto left = check.range(prefix + "c/names/svc");
  ASSERT_TRUE(left);
  EXPECT_TRUE(left->kvs.empty());
  caf::anon_send_exit(holder_a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(holder_b, caf::exit_reason::user_shutdown);
}

TEST_F(etcd_session_test, a_lease_revoked_elsewhere_is_reported_lost) {
  auto s = session(1, "a", 3s);
  s->open(caf::actor_cast<caf::actor>(sink));
  ASSERT_TRUE(next<etcd_opened>());
  s->announce(relay::member_status::up);
  ASSERT_TRUE(next<etcd_announced>());
  etcd_client other{{server_->url()}, 2000ms};
  auto keys = other.range(prefix + "c/membership/members/", true);
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->kvs.size(), 1u);
  ASSERT_FALSE(other.revoke(keys->kvs[0].lease));
  // The next keep-alive (within ttl / 3) finds the lease gone.
  auto lost = next<etcd_lost>(5s);
  ASSERT_TRUE(lost);
  EXPECT_NE(relay::describe(lost->reason).find("expired"), std::string::npos)
    << relay::describe(lost->reason);
}

TEST_F(etcd_session_test, stop_is_prompt_while_watching) {
  for (int i = 0; i < 20; ++i) {
    auto s = session(1, "a");
    s->open(caf::actor_cast<caf::actor>(sink));
    ASSERT_TRUE(next<etcd_opened>());
    // Sometimes the watch is starting, sometimes it is running.
    if (i % 2 == 0) {
      ASSERT_TRUE(next<etcd_update>());
    }
    auto t0 = std::chrono::steady_clock::now();
    s->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
}

TEST_F(etcd_session_test, an_unreachable_etcd_is_an_error_not_a_hang) {
  etcd_settings cfg;
  cfg.endpoints = {"http://127.0.0.1:1"}; // nothing listens there
  cfg.prefix = prefix;
  cfg.timeout = 300ms;
  relay::member_info self;
  self.node = make_id(1);
  self.name = "a";
  etcd_session s{cfg, "c", self};
  s.open(caf::actor_cast<caf::actor>(sink));
  auto opened = next<etcd_opened>();
  ASSERT_TRUE(opened);
  EXPECT_TRUE(relay::is(opened->error, relay::errc::connect_failed))
    << relay::describe(opened->error);
}
