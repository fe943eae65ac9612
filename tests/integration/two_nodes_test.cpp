// Two nodes in one test process, connected over a real Unix domain socket.

#include <fstream>
#include <future>

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "relay/node.hpp"
#include "test_support.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

struct handle_msg {
  caf::actor who;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(who);
  }
};

using get_atom = caf::atom_constant<caf::atom("get")>;
using pong_actor = caf::typed_actor<caf::replies_to<ping>::with<pong>>;
using reverse_actor = caf::typed_actor<caf::replies_to<pong>::with<ping>>;

pong_actor::behavior_type typed_pong() {
  return {[](ping& x) { return pong{x.seq, std::move(x.payload)}; }};
}

caf::behavior dynamic_pong() {
  return {[](ping& x) { return pong{x.seq, std::move(x.payload)}; }};
}

// Records integers and reports whether they arrived in order.
caf::behavior collector(caf::stateful_actor<std::vector<int32_t>>* self) {
  return {
    [=](int32_t x) { self->state.push_back(x); },
    [=](get_atom) {
      bool ordered = true;
      for (size_t i = 0; i < self->state.size(); ++i)
        ordered = ordered && self->state[i] == static_cast<int32_t>(i);
      return caf::make_message(static_cast<int32_t>(self->state.size()),
                               ordered);
    },
  };
}

} // namespace

RELAY_MESSAGE_TYPE(handle_msg, "relay.test.handle_msg")

class two_nodes : public ::testing::Test {
protected:
  void SetUp() override {
    auto cookie = dir.path() + "/cookie";
    std::ofstream{cookie} << "two-nodes-test-secret-0123456789\n";
    ::chmod(cookie.c_str(), 0600);
    for (auto* cfg : {&server_cfg, &client_cfg}) {
      cfg->add_message_type<ping>().add_message_type<pong>();
      cfg->add_message_type<handle_msg>();
      cfg->cookie_file = cookie;
    }
    server_cfg.node_name = "server";
    client_cfg.node_name = "client";
    server = std::make_unique<node>(server_cfg);
    client = std::make_unique<node>(client_cfg);
    auto real = server->listen(dir.uds("server.sock"));
    ASSERT_TRUE(real) << describe(real.error());
    uri = *real;
  }

  void TearDown() override {
    for (auto& a : actors)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    actors.clear();
    client.reset();
    server.reset();
  }

  template <class Handle>
  Handle keep(Handle h) {
    actors.push_back(caf::actor_cast<caf::actor>(h));
    return h;
  }

  temp_dir dir;
  node_config server_cfg;
  node_config client_cfg;
  std::unique_ptr<node> server;
  std::unique_ptr<node> client;
  std::string uri;
  std::vector<caf::actor> actors;
};

TEST_F(two_nodes, request_response_round_trip) {
  auto srv = keep(server->system().spawn(typed_pong));
  ASSERT_FALSE(server->publish(srv, "pong"));
  auto remote = client->lookup(uri, "pong");
  ASSERT_TRUE(remote) << describe(remote.error());
  EXPECT_NE((*remote)->node(), client->id());
  caf::scoped_actor self{client->system()};
  for (uint64_t i = 0; i < 10; ++i) {
    bool ok = false;
    self->request(*remote, 5s, ping{i, "payload"})
      .receive([&](const pong& x) { ok = x.seq == i && x.payload == "payload"; },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
    EXPECT_TRUE(ok);
  }
  EXPECT_EQ(client->stats().connected_peers, 1u);
}

TEST_F(two_nodes, large_messages_round_trip_as_memory_files) {
  // Over uds both nodes read bulk frames (hello bit 4): payloads from
  // 512 KiB up travel as sealed memory files, kept whole by the session.
  auto srv = keep(server->system().spawn(typed_pong));
  ASSERT_FALSE(server->publish(srv, "pong"));
  auto remote = client->lookup(uri, "pong");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  uint64_t seq = 0;
  for (size_t size : {size_t{300} << 10, size_t{1} << 20, size_t{8} << 20,
                      size_t{100}, size_t{2} << 20}) {
    std::string payload(size, '\0');
    for (size_t i = 0; i < size; ++i)
      payload[i] = static_cast<char>('a' + (i * 7 + seq) % 26);
    bool ok = false;
    self->request(*remote, 10s, ping{++seq, payload})
      .receive([&](const pong& x) { ok = x.seq == seq && x.payload == payload; },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
    EXPECT_TRUE(ok) << size;
  }
}

TEST_F(two_nodes, one_node_serves_uds_and_tcp_at_once) {
  auto tcp = server->listen("tcp://127.0.0.1:0");
  ASSERT_TRUE(tcp) << describe(tcp.error());
  EXPECT_EQ(tcp->rfind("tcp://127.0.0.1:", 0), 0u) << *tcp;
  auto srv = keep(server->system().spawn(typed_pong));
  ASSERT_FALSE(server->publish(srv, "typed"));
  // The URI picks the transport; a third node reaches the server over tcp
  // while the client uses uds.
  node_config third_cfg;
  third_cfg.add_message_type<ping>().add_message_type<pong>();
  third_cfg.cookie_file = client_cfg.cookie_file;
  node third{third_cfg};
  for (auto* n : {client.get(), &third}) {
    auto where = n == client.get() ? uri : *tcp;
    auto remote = n->lookup<pong_actor>(where, "typed");
    ASSERT_TRUE(remote) << where << ": " << describe(remote.error());
    caf::scoped_actor me{n->system()};
    me->request(*remote, 5s, ping{3, where})
      .receive([&](const pong& x) { EXPECT_EQ(x.payload, where); },
               [](caf::error& err) { ADD_FAILURE() << describe(err); });
  }
  EXPECT_EQ(server->stats().connected_peers, 2u);
}

TEST_F(two_nodes, delivery_on_the_io_thread_keeps_order_and_replies) {
  // relay.deliver-on-io-thread: actors run on the I/O thread that read
  // their message, and what they send to local actors runs there too (up
  // to a bound, then on CAF's scheduler).
  node_config a_cfg;
  node_config b_cfg;
  for (auto* cfg : {&a_cfg, &b_cfg}) {
    cfg->add_message_type<ping>().add_message_type<pong>();
    cfg->deliver_on_io_thread = true;
  }
  node a{a_cfg};
  node b{b_cfg};
  auto where = a.listen(dir.uds("inline.sock"));
  ASSERT_TRUE(where) << describe(where.error());
  // A front actor hands every integer to a local collector.
  auto sink = a.system().spawn(collector);
  auto front = a.system().spawn(
    [sink](caf::event_based_actor* self) -> caf::behavior {
      return {
        [=](int32_t x) { self->send(sink, x); },
        [=](get_atom) { return self->delegate(sink, get_atom::value); },
        [](ping& x) { return pong{x.seq, std::move(x.payload)}; },
      };
    });
  ASSERT_FALSE(a.publish(front, "front"));
  auto remote = b.lookup(*where, "front");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{b.system()};
  constexpr int32_t n = 20000;
  for (int32_t i = 0; i < n; ++i)
    self->send(*remote, i);
  self->request(*remote, 10s, get_atom::value)
    .receive(
      [&](int32_t count, bool ordered) {
        EXPECT_EQ(count, n);
        EXPECT_TRUE(ordered);
      },
      [](caf::error& err) { ADD_FAILURE() << describe(err); });
  self->request(*remote, 5s, ping{9, "inline"})
    .receive([](const pong& x) { EXPECT_EQ(x.payload, "inline"); },
             [](caf::error& err) { ADD_FAILURE() << describe(err); });
  for (auto* x : {&front, &sink})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

TEST_F(two_nodes, typed_lookup_checks_the_interface) {
  auto srv = keep(server->system().spawn(typed_pong));
  ASSERT_FALSE(server->publish(srv, "typed"));
  auto dyn = keep(server->system().spawn(dynamic_pong));
  ASSERT_FALSE(server->publish(dyn, "dynamic"));
  auto good = client->lookup<pong_actor>(uri, "typed");
  ASSERT_TRUE(good) << describe(good.error());
  caf::scoped_actor self{client->system()};
  self->request(*good, 5s, ping{7, "x"})
    .receive([](const pong& x) { EXPECT_EQ(x.seq, 7u); },
             [](caf::error& err) { ADD_FAILURE() << describe(err); });
  auto bad = client->lookup<reverse_actor>(uri, "typed");
  ASSERT_FALSE(bad);
  EXPECT_TRUE(is(bad.error(), errc::interface_mismatch)) << describe(bad.error());
  EXPECT_NE(describe(bad.error()).find("(relay.test.pong) -> (relay.test.ping)"),
            std::string::npos);
  auto untyped = client->lookup<pong_actor>(uri, "dynamic");
  ASSERT_FALSE(untyped);
  EXPECT_TRUE(is(untyped.error(), errc::interface_mismatch));
}

TEST_F(two_nodes, lookup_errors_are_clear) {
  auto missing = client->lookup(uri, "nobody");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(is(missing.error(), errc::name_not_found));
  auto scheme = client->lookup("carrier-pigeon://x", "pong");
  ASSERT_FALSE(scheme);
  EXPECT_TRUE(is(scheme.error(), errc::unknown_scheme));
  EXPECT_NE(describe(scheme.error()).find("known: uds"), std::string::npos);
  auto malformed = client->lookup("no scheme", "pong");
  ASSERT_FALSE(malformed);
  EXPECT_TRUE(is(malformed.error(), errc::invalid_uri));
  auto nobody = client->lookup(dir.uds("nobody.sock"), "pong");
  ASSERT_FALSE(nobody);
  EXPECT_TRUE(is(nobody.error(), errc::connect_failed)) << describe(nobody.error());
  EXPECT_NE(describe(nobody.error()).find("nobody.sock"), std::string::npos);
}

TEST_F(two_nodes, non_blocking_lookup_from_an_actor) {
  auto srv = keep(server->system().spawn(typed_pong));
  ASSERT_FALSE(server->publish(srv, "pong"));
  std::promise<std::string> done;
  auto lookup_actor = client->lookup_actor();
  auto target = uri;
  auto user = client->system().spawn([&done, lookup_actor,
                                      target](caf::event_based_actor* self) {
    self->request(lookup_actor, 10s, lookup_atom::value, target,
                  std::string{"pong"})
      .then(
        [=, &done](caf::actor remote) {
          self->request(remote, 5s, ping{1, "async"})
            .then([=, &done](const pong& x) {
                    done.set_value(x.payload);
                    self->quit();
                  },
                  [=, &done](caf::error& err) {
                    done.set_value(describe(err));
                    self->quit();
                  });
        },
        [=, &done](caf::error& err) {
          done.set_value(describe(err));
          self->quit();
        });
  });
  auto result = done.get_future();
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(result.get(), "async");
}

TEST_F(two_nodes, order_is_preserved_per_sender_receiver_pair) {
  auto col = keep(server->system().spawn(collector));
  ASSERT_FALSE(server->publish(col, "collector"));
  auto remote = client->lookup(uri, "collector");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  constexpr int32_t n = 20000;
  for (int32_t i = 0; i < n; ++i)
    self->send(*remote, i);
  self->request(*remote, 10s, get_atom::value)
    .receive(
      [&](int32_t count, bool ordered) {
        EXPECT_EQ(count, n);
        EXPECT_TRUE(ordered);
      },
      [&](caf::error& err) { ADD_FAILURE() << describe(err); });
}

TEST_F(two_nodes, unregistered_type_is_an_error_the_sender_sees) {
  auto srv = keep(server->system().spawn(dynamic_pong));
  ASSERT_FALSE(server->publish(srv, "pong"));
  auto remote = client->lookup(uri, "pong");
  ASSERT_TRUE(remote);
  caf::scoped_actor self{client->system()};
  self->request(*remote, 5s, unregistered{1})
    .receive([](int32_t) { ADD_FAILURE() << "unexpected reply"; },
             [](caf::error& err) {
               EXPECT_TRUE(is(err, errc::unregistered_type)) << describe(err);
               EXPECT_NE(describe(err).find("unregistered"), std::string::npos);
             });
  log_capture logs;
  auto before = client->stats().dropped_messages;
  self->send(*remote, unregistered{2});
  EXPECT_EQ(client->stats().dropped_messages, before + 1);
  EXPECT_TRUE(logs.wait_for({"dropped message", "unregistered"}));
}

TEST_F(two_nodes, unknown_type_id_gets_an_error_response) {
  // A node that knows ping but not pong receives a pong.
  node_config limited_cfg;
  limited_cfg.add_message_type<ping>();
  limited_cfg.node_name = "limited";
  {
    node limited{limited_cfg};
    auto lim_uri = limited.listen(dir.uds("limited.sock"));
    ASSERT_TRUE(lim_uri);
    auto srv = limited.system().spawn(
      []() -> caf::behavior { return {[](const ping&) { return int32_t{1}; }}; });
    ASSERT_FALSE(limited.publish(srv, "sink"));
    auto remote = client->lookup(*lim_uri, "sink");
    ASSERT_TRUE(remote) << describe(remote.error());
    caf::scoped_actor self{client->system()};
    self->request(*remote, 5s, pong{1, "?"})
      .receive([](int32_t) { ADD_FAILURE() << "unexpected reply"; },
               [](caf::error& err) {
                 EXPECT_TRUE(is(err, errc::unknown_type_id)) << describe(err);
               });
    EXPECT_EQ(limited.stats().unknown_type_ids, 1u);
    // The connection survived: a good request still works.
    self->request(*remote, 5s, ping{2, "ok"})
      .receive([](int32_t) {},
               [](caf::error& err) { ADD_FAILURE() << describe(err); });
    caf::anon_send_exit(srv, caf::exit_reason::user_shutdown);
  }
}

TEST_F(two_nodes, monitor_reports_the_remote_exit_reason) {
  auto srv = keep(server->system().spawn(dynamic_pong));
  ASSERT_FALSE(server->publish(srv, "pong"));
  auto remote = client->lookup(uri, "pong");
  ASSERT_TRUE(remote);
  caf::scoped_actor self{client->system()};
  self->monitor(*remote);
  // Make sure the monitor request reached the server first.
  self->request(*remote, 5s, ping{0, ""}).receive([](const pong&) {},
                                                  [](caf::error&) {});
  caf::anon_send_exit(srv, caf::exit_reason::user_shutdown);
  bool got = false;
  self->receive(
    [&](const caf::down_msg& dm) {
      got = true;
      EXPECT_EQ(dm.reason, caf::exit_reason::user_shutdown) << describe(dm.reason);
      EXPECT_EQ(dm.source, caf::actor_cast<caf::actor_addr>(*remote));
    },
    caf::after(10s) >> [] { ADD_FAILURE() << "no DOWN"; });
  EXPECT_TRUE(got);
}

// Disabled: the EXIT for a local actor linked to a remote one does not arrive
// yet (the remote-to-local direction below works). Tracked in the issue note.
TEST_F(two_nodes, link_to_remote_actor_delivers_its_exit) {
  // Remote exits: the local linked actor gets EXIT with the reason. (Not
  // exit_reason::kill: CAF makes that one fatal, bypassing exit handlers.)
  auto srv = keep(server->system().spawn(dynamic_pong));
  ASSERT_FALSE(server->publish(srv, "pong"));
  auto remote = client->lookup(uri, "pong");
  ASSERT_TRUE(remote);
  caf::scoped_actor self{client->system()};
  auto watcher = keep(client->system().spawn(
    [](caf::event_based_actor* me, caf::actor target,
       caf::actor report) -> caf::behavior {
      me->set_exit_handler([=](caf::exit_msg& em) {
        me->send(report, std::string{"exit"}, em.reason);
        me->quit();
      });
      me->link_to(target);
      return {[=](get_atom) { return true; }};
    },
    *remote, caf::actor{self}));
  // The link frame travels before this request's response can come back.
  self->request(watcher, 5s, get_atom::value).receive([](bool) {},
                                                       [](caf::error&) {});
  self->request(*remote, 5s, ping{0, ""}).receive([](const pong&) {},
                                                  [](caf::error&) {});
  caf::anon_send_exit(srv, caf::exit_reason::user_shutdown);
  self->receive(
    [](const std::string&, const caf::error& reason) {
      EXPECT_EQ(reason, caf::exit_reason::user_shutdown) << describe(reason);
    },
    caf::after(10s) >> [] { ADD_FAILURE() << "no EXIT"; });
}

TEST_F(two_nodes, link_from_remote_side_sees_local_exit) {
  // A server actor links to a client actor it got in a message; when the
  // client actor dies, the server actor gets EXIT.
  caf::scoped_actor server_self{server->system()};
  auto linker = keep(server->system().spawn(
    [](caf::event_based_actor* me, caf::actor report) -> caf::behavior {
      me->set_exit_handler([=](caf::exit_msg& em) {
        me->send(report, std::string{"exit"}, em.reason);
      });
      return {[=](const handle_msg& m) {
        me->link_to(m.who);
        return true;
      }};
    },
    caf::actor{server_self}));
  ASSERT_FALSE(server->publish(linker, "linker"));
  auto remote = client->lookup(uri, "linker");
  ASSERT_TRUE(remote);
  auto victim = client->system().spawn(
    []() -> caf::behavior { return {[](int32_t) {}}; });
  caf::scoped_actor self{client->system()};
  self->request(*remote, 5s, handle_msg{victim})
    .receive([](bool) {}, [](caf::error& err) { ADD_FAILURE() << describe(err); });
  // The link was established before the response; now the victim dies.
  caf::anon_send_exit(victim, caf::exit_reason::user_shutdown);
  server_self->receive(
    [](const std::string&, const caf::error& reason) {
      EXPECT_EQ(reason, caf::exit_reason::user_shutdown) << describe(reason);
    },
    caf::after(10s) >> [] { ADD_FAILURE() << "no EXIT on the server side"; });
}

// A client actor that traps exits and monitors `target`: it reports
// ("exit", reason) for an EXIT and ("down", reason) for a DOWN. Answers
// get_atom once its monitor is in place.
caf::behavior exit_watcher(caf::event_based_actor* me, caf::actor target,
                           caf::actor report) {
  me->set_exit_handler([=](caf::exit_msg& em) {
    me->send(report, std::string{"exit"}, em.reason);
  });
  me->set_down_handler([=](caf::down_msg& dm) {
    me->send(report, std::string{"down"}, dm.reason);
  });
  me->monitor(target);
  return {[](get_atom) { return true; }};
}

// Waits until `watcher` answers get_atom, i.e. its init has run.
void await_ready(caf::scoped_actor& self, const caf::actor& watcher) {
  self->request(watcher, 5s, get_atom::value)
    .receive([](bool) {}, [](caf::error& err) { ADD_FAILURE() << describe(err); });
}

// Expects the next report of an exit_watcher to be (`what`, `reason`).
void expect_report(caf::scoped_actor& self, const std::string& what,
                   caf::exit_reason reason) {
  self->receive(
    [&](const std::string& got, const caf::error& why) {
      EXPECT_EQ(got, what);
      EXPECT_EQ(why, reason) << describe(why);
    },
    caf::after(10s) >> [&] { ADD_FAILURE() << "no " << what; });
}

// A server actor that, given a handle, runs `op` on it and then quits.
template <class Op>
caf::actor spawn_link_then_quit(caf::actor_system& sys, Op op) {
  return sys.spawn([op](caf::event_based_actor* me) -> caf::behavior {
    return {[=](const handle_msg& m) {
      op(me, m.who);
      me->quit(caf::exit_reason::user_shutdown);
    }};
  });
}

TEST_F(two_nodes, link_then_exit_delivers_the_real_reason) {
  // The link frame leaves before the DOWN frame of an actor that links and
  // exits at once, so the peer reports the real exit reason, not "unknown".
  auto linker = spawn_link_then_quit(
    server->system(),
    [](caf::event_based_actor* me, const caf::actor& x) { me->link_to(x); });
  ASSERT_FALSE(server->publish(linker, "linker"));
  auto remote = client->lookup(uri, "linker");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  auto watcher = keep(
    client->system().spawn(exit_watcher, *remote, caf::actor{self}));
  await_ready(self, watcher);
  self->send(*remote, handle_msg{watcher});
  // Link attachables run before the (earlier attached) monitor: EXIT first.
  expect_report(self, "exit", caf::exit_reason::user_shutdown);
  expect_report(self, "down", caf::exit_reason::user_shutdown);
}

TEST_F(two_nodes, unlink_from_the_remote_side_stops_the_exit) {
  auto linker = spawn_link_then_quit(
    server->system(), [](caf::event_based_actor* me, const caf::actor& x) {
      me->link_to(x);
      me->unlink_from(x);
    });
  ASSERT_FALSE(server->publish(linker, "linker"));
  auto remote = client->lookup(uri, "linker");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  auto watcher = keep(
    client->system().spawn(exit_watcher, *remote, caf::actor{self}));
  await_ready(self, watcher);
  self->send(*remote, handle_msg{watcher});
  // Had the unlink not arrived, an EXIT would come before the DOWN.
  expect_report(self, "down", caf::exit_reason::user_shutdown);
}

TEST_F(two_nodes, unlink_from_a_remote_actor_stops_its_exit) {
  auto srv = keep(server->system().spawn(dynamic_pong));
  ASSERT_FALSE(server->publish(srv, "pong"));
  auto remote = client->lookup(uri, "pong");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{client->system()};
  auto watcher = keep(client->system().spawn(
    [](caf::event_based_actor* me, caf::actor target,
       caf::actor report) -> caf::behavior {
      auto b = exit_watcher(me, target, report);
      me->link_to(target);
      me->unlink_from(target);
      return b;
    },
    *remote, caf::actor{self}));
  await_ready(self, watcher);
  caf::anon_send_exit(srv, caf::exit_reason::user_shutdown);
  expect_report(self, "down", caf::exit_reason::user_shutdown);
}

TEST_F(two_nodes, demonitor_of_a_remote_actor_stops_its_down) {
  auto srv = keep(server->system().spawn(dynamic_pong));
  ASSERT_FALSE(server->publish(srv, "pong"));
  auto remote = client->lookup(uri, "pong");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor witness{client->system()};
  caf::scoped_actor self{client->system()};
  // Attached later, so it would run first: had it stayed, its DOWN would be
  // in self's mailbox by the time the witness gets its own.
  witness->monitor(*remote);
  self->monitor(*remote);
  self->demonitor(*remote);
  caf::anon_send_exit(srv, caf::exit_reason::user_shutdown);
  witness->receive(
    [](const caf::down_msg& dm) {
      EXPECT_EQ(dm.reason, caf::exit_reason::user_shutdown) << describe(dm.reason);
    },
    caf::after(10s) >> [] { ADD_FAILURE() << "no DOWN for the witness"; });
  self->receive([](const caf::down_msg&) { ADD_FAILURE() << "DOWN after demonitor"; },
                caf::after(0s) >> [] {});
}

TEST_F(two_nodes, handles_inside_messages_work_both_ways) {
  // The server keeps a handle it received and later sends to it and
  // monitors it.
  caf::scoped_actor server_self{server->system()};
  auto keeper = keep(server->system().spawn(
    [](caf::event_based_actor* me, caf::actor report) -> caf::behavior {
      me->set_down_handler([=](caf::down_msg& dm) {
        me->send(report, std::string{"down"}, dm.reason);
      });
      return {[=](const handle_msg& m) {
        me->monitor(m.who);
        me->send(m.who, ping{42, "hello back"});
      }};
    },
    caf::actor{server_self}));
  ASSERT_FALSE(server->publish(keeper, "keeper"));
  auto remote = client->lookup(uri, "keeper");
  ASSERT_TRUE(remote);
  caf::scoped_actor self{client->system()};
  auto me = client->system().spawn(
    [](caf::event_based_actor* me, caf::actor report) -> caf::behavior {
      return {[=](const ping& p) {
        me->send(report, p.payload);
        me->quit(caf::exit_reason::user_shutdown);
      }};
    },
    caf::actor{self});
  self->send(*remote, handle_msg{me});
  self->receive([](const std::string& payload) { EXPECT_EQ(payload, "hello back"); },
                caf::after(10s) >> [] { ADD_FAILURE() << "no message back"; });
  server_self->receive(
    [](const std::string& what, const caf::error& reason) {
      EXPECT_EQ(what, "down");
      EXPECT_EQ(reason, caf::exit_reason::user_shutdown) << describe(reason);
    },
    caf::after(10s) >> [] { ADD_FAILURE() << "no DOWN for the client actor"; });
}

TEST_F(two_nodes, delegate_to_a_remote_actor_routes_the_response_back) {
  // front (client node) delegates to the remote pong (server node).
  auto srv = keep(server->system().spawn(typed_pong));
  ASSERT_FALSE(server->publish(srv, "pong"));
  auto remote = client->lookup(uri, "pong");
  ASSERT_TRUE(remote);
  auto front = keep(client->system().spawn(
    [](caf::event_based_actor* me, caf::actor back) -> caf::behavior {
      return {[=](ping& p) { return me->delegate(back, std::move(p)); }};
    },
    *remote));
  caf::scoped_actor self{client->system()};
  self->request(front, 5s, ping{9, "via front"})
    .receive([](const pong& x) { EXPECT_EQ(x.payload, "via front"); },
             [](caf::error& err) { ADD_FAILURE() << describe(err); });
}

TEST_F(two_nodes, lost_connection_fails_requests_at_once_and_reports_down) {
  // An actor that never answers keeps the request pending.
  caf::scoped_actor server_self{server->system()};
  auto silent = keep(server->system().spawn(
    [](caf::event_based_actor* me, caf::actor report) -> caf::behavior {
      return {[=](const ping&) -> caf::result<pong> {
        me->send(report, std::string{"got it"});
        return caf::delegated<pong>{};
      }};
    },
    caf::actor{server_self}));
  ASSERT_FALSE(server->publish(silent, "silent"));
  auto remote = client->lookup(uri, "silent");
  ASSERT_TRUE(remote);
  caf::scoped_actor watcher{client->system()};
  watcher->monitor(*remote);
  auto pending = std::async(std::launch::async, [&] {
    caf::scoped_actor self{client->system()};
    caf::error result;
    auto start = std::chrono::steady_clock::now();
    self->request(*remote, 60s, ping{1, "never answered"})
      .receive([](const pong&) {}, [&](caf::error& err) { result = err; });
    return std::make_pair(result, std::chrono::steady_clock::now() - start);
  });
  // Once the request arrived, cut the connection from the server side.
  server_self->receive([](const std::string&) {},
                       caf::after(10s) >> [] { ADD_FAILURE() << "no request"; });
  ASSERT_TRUE(server->disconnect(client->id()));
  ASSERT_EQ(pending.wait_for(20s), std::future_status::ready);
  auto [err, elapsed] = pending.get();
  EXPECT_TRUE(is(err, errc::node_unreachable)) << describe(err);
  EXPECT_LT(elapsed, 30s);
  watcher->receive(
    [](const caf::down_msg& dm) {
      EXPECT_EQ(dm.reason, caf::exit_reason::remote_link_unreachable);
    },
    caf::after(10s) >> [] { ADD_FAILURE() << "no DOWN on connection loss"; });
}
