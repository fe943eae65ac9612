// Untrusted peers (trust_level::untrusted): two nodes in this process over
// real sockets; the server listens once trusted and once untrusted, and
// the client tries, through each, what only a trusted peer may do.

#include <fstream>

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "relay/node.hpp"
#include "test_support.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

caf::behavior echo() {
  return {[](int32_t x) { return x; }};
}

class trust : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    auto cookie = dir.path() + "/cookie";
    std::ofstream{cookie} << "trust-test-secret-0123456789abcdef\n";
    ::chmod(cookie.c_str(), 0600);
    for (auto* cfg : {&server_cfg, &client_cfg})
      cfg->cookie_file = cookie;
    server_cfg.node_name = "server";
    client_cfg.node_name = "client";
    server_cfg.add_actor_type("test.echo", echo);
    server = std::make_unique<node>(server_cfg);
    client = std::make_unique<node>(client_cfg);
    target = server->system().spawn(echo);
    ASSERT_FALSE(server->publish(target, "echo"));
    auto where = [&](const std::string& tag) {
      return GetParam() == "tcp" ? std::string{"tcp://127.0.0.1:0"}
                                 : GetParam() + "://" + dir.path() + "/" + tag
                                     + ".sock";
    };
    auto open = server->listen(where("untrusted"), trust_level::untrusted);
    ASSERT_TRUE(open) << describe(open.error());
    untrusted_uri = *open;
    auto inner = server->listen(where("trusted"));
    ASSERT_TRUE(inner) << describe(inner.error());
    trusted_uri = *inner;
  }

  void TearDown() override {
    caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
    client.reset();
    server.reset();
  }

  /// Whether `hdl` answers a request within a bound.
  bool answers(const caf::actor& hdl) {
    caf::scoped_actor self{client->system()};
    bool ok = false;
    self->request(hdl, 5s, int32_t{7})
      .receive([&](int32_t x) { ok = x == 7; }, [](caf::error&) {});
    return ok;
  }

  temp_dir dir;
  node_config server_cfg;
  node_config client_cfg;
  std::unique_ptr<node> server;
  std::unique_ptr<node> client;
  caf::actor target;
  std::string untrusted_uri;
  std::string trusted_uri;
};

TEST_P(trust, an_untrusted_peer_sends_messages_and_requests) {
  auto remote = client->lookup(untrusted_uri, "echo");
  ASSERT_TRUE(remote) << describe(remote.error());
  EXPECT_TRUE(answers(*remote));
  EXPECT_EQ(server->stats().untrusted_drops, 0u);
}

TEST_P(trust, an_untrusted_peer_cannot_stop_an_actor_even_with_kill) {
  auto remote = client->lookup(untrusted_uri, "echo");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::anon_send_exit(*remote, caf::exit_reason::kill);
  caf::anon_send_exit(*remote, caf::exit_reason::user_shutdown);
  caf::anon_send(*remote, caf::down_msg{caf::actor_addr{},
                                        caf::exit_reason::kill});
  // Frames keep their order: by the answer, all three were refused.
  EXPECT_TRUE(answers(*remote));
  EXPECT_EQ(server->stats().untrusted_drops, 3u);
  // A request carrying one is answered with the reason.
  caf::scoped_actor self{client->system()};
  caf::error err;
  self->request(*remote, 5s, caf::exit_msg{caf::actor_addr{},
                                           caf::exit_reason::kill})
    .receive([] {}, [&](caf::error& e) { err = std::move(e); });
  EXPECT_TRUE(is(err, errc::forbidden)) << describe(err);
  EXPECT_TRUE(answers(*remote));
}

TEST_P(trust, an_untrusted_peer_cannot_link) {
  auto remote = client->lookup(untrusted_uri, "echo");
  ASSERT_TRUE(remote) << describe(remote.error());
  // A client actor links to the server's actor, then dies: over a trusted
  // connection that would take the server's actor along.
  auto linker = client->system().spawn(
    [](caf::event_based_actor* self, caf::actor other) -> caf::behavior {
      self->link_to(other);
      return {[=](int32_t) { self->quit(caf::exit_reason::user_shutdown); }};
    },
    *remote);
  caf::scoped_actor self{client->system()};
  self->monitor(linker);
  self->send(linker, int32_t{1});
  self->receive([](const caf::down_msg&) {},
                caf::after(5s) >> [] { ADD_FAILURE() << "linker lives"; });
  EXPECT_TRUE(answers(*remote));
  EXPECT_GE(server->stats().untrusted_drops, 1u);
}

TEST_P(trust, an_untrusted_peer_cannot_spawn) {
  auto spawned = client->spawn_on(untrusted_uri, "test.echo");
  ASSERT_FALSE(spawned);
  EXPECT_TRUE(is(spawned.error(), errc::forbidden))
    << describe(spawned.error());
}

TEST_P(trust, a_trusted_peer_can_do_all_of_it) {
  // The same attempts through the trusted listener succeed: the tests
  // above fail for the reason they claim.
  auto spawned = client->spawn_on(trusted_uri, "test.echo");
  ASSERT_TRUE(spawned) << describe(spawned.error());
  EXPECT_TRUE(answers(*spawned));
  auto remote = client->lookup(trusted_uri, "echo");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  self->monitor(*remote);
  caf::anon_send_exit(*remote, caf::exit_reason::kill);
  bool down = false;
  self->receive([&](const caf::down_msg&) { down = true; },
                caf::after(5s) >> [] {});
  EXPECT_TRUE(down);
  EXPECT_EQ(server->stats().untrusted_drops, 0u);
  caf::anon_send_exit(*spawned, caf::exit_reason::kill);
}

INSTANTIATE_TEST_SUITE_P(over, trust, ::testing::Values("uds", "tcp"),
                         [](const auto& info) { return info.param; });

} // namespace
