// The introspection service every node publishes, and relayctl on it: two
// real nodes over a real Unix socket in this process (the service), and
// relayctl as a real process against one of them (the tool). relayctl
// connects as a hidden node: the observed node raises no node event for it.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <set>

#include "child_process.hpp"
#include "supervisor_reports.hpp"
#include "relay/json_codec.hpp"
#include "relay/node.hpp"
#include "relay/supervisor.hpp"
#include "test_support.hpp"

namespace introspection_test {

struct greeting {
  uint64_t seq = 0;
  std::string name;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(seq), CEREAL_NVP(name));
  }
};

struct reply {
  uint64_t seq = 0;
  std::string text;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(seq), CEREAL_NVP(text));
  }
};

/// Registered without JSON: a call with it is refused.
struct opaque {
  int32_t x = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x);
  }
};

using greeter_actor = caf::typed_actor<caf::replies_to<greeting>::with<reply>>;

} // namespace introspection_test

RELAY_MESSAGE_TYPE(introspection_test::greeting, "introspection_test.greeting")
RELAY_MESSAGE_TYPE(introspection_test::reply, "introspection_test.reply")
RELAY_MESSAGE_TYPE(introspection_test::opaque, "introspection_test.opaque")

namespace {

using namespace introspection_test;
using namespace std::chrono_literals;
using json = nlohmann::json;
using relay::test::temp_dir;

greeter_actor::behavior_type greeter() {
  return {
    [](greeting& g) { return reply{g.seq, "hello " + g.name}; },
  };
}

caf::behavior idle_worker() {
  return {[](int32_t) {}};
}

/// Runs relayctl to its end: exit status and output.
relay::test::run_result relayctl(std::vector<std::string> args) {
  args.insert(args.begin(), RELAYCTL);
  return relay::test::run(std::move(args));
}

void add_types(relay::node_config& cfg) {
  cfg.add_message_type<greeting>(relay::json_codec_for<greeting>())
    .add_message_type<reply>(relay::json_codec_for<reply>())
    .add_message_type<opaque>();
}

class introspection : public ::testing::Test {
protected:
  void SetUp() override {
    server_cfg.node_name = "observed";
    add_types(server_cfg);
    server.emplace(server_cfg);
    auto uri = server->listen(dir.uds("observed.sock"));
    ASSERT_TRUE(uri) << relay::describe(uri.error());
    server_uri = *uri;
    ASSERT_FALSE(server->publish(server->system().spawn(greeter), "greeter"));
    client_cfg.node_name = "tool";
    client_cfg.hidden = true;
    add_types(client_cfg);
    client.emplace(client_cfg);
  }

  /// Starts a supervisor "outer" with workers a and b and a nested
  /// supervisor "inner" with worker c, visible to introspection.
  relay::supervisor_actor start_tree(caf::actor reports = caf::actor{}) {
    auto worker = [](std::string id) {
      relay::child_spec c;
      c.id = std::move(id);
      c.start = [](caf::actor_system& sys) { return sys.spawn(idle_worker); };
      return c;
    };
    relay::supervisor_spec inner_spec;
    inner_spec.name = "inner";
    inner_spec.node = &*server;
    relay::supervisor_spec outer_spec;
    outer_spec.name = "outer";
    outer_spec.node = &*server;
    outer_spec.intensity = 5;
    outer_spec.report_to = reports;
    auto sup = relay::spawn_supervisor(
      server->system(), outer_spec,
      {worker("a"), worker("b"),
       relay::supervisor_child("inner", inner_spec, {worker("c")})});
    EXPECT_TRUE(sup) << relay::describe(sup.error());
    caf::scoped_actor self{server->system()};
    self->request(*sup, 5s, relay::wait_started_atom::value)
      .receive([](relay::ok_atom) {},
               [](caf::error& err) { FAIL() << relay::describe(err); });
    return *sup;
  }

  /// Asks the server's service for `topic` through the hidden client.
  caf::expected<json> ask(const std::string& topic, const std::string& args = "",
                          const std::string& uri = "") {
    auto svc = client->lookup(uri.empty() ? server_uri : uri,
                              relay::node::introspection_name);
    if (!svc)
      return svc.error();
    caf::expected<json> result{caf::error{}};
    caf::scoped_actor self{client->system()};
    self->request(*svc, 10s, relay::introspect_atom::value, topic, args)
      .receive([&](std::string& text) { result = json::parse(text); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  temp_dir dir;
  relay::node_config server_cfg;
  relay::node_config client_cfg;
  std::optional<relay::node> server;
  std::optional<relay::node> client;
  std::string server_uri;
};

TEST_F(introspection, a_hidden_node_raises_no_node_events) {
  caf::scoped_actor observer{server->system()};
  server->monitor_nodes(observer);
  ASSERT_TRUE(client->connect(server_uri));
  // A visible node after the hidden one: its node_up is the first event.
  relay::node_config visible_cfg;
  visible_cfg.node_name = "visible";
  relay::node visible{visible_cfg};
  ASSERT_TRUE(visible.connect(server_uri));
  observer->receive(
    [&](const relay::node_up_msg& up) { EXPECT_EQ(up.node, visible.id()); },
    caf::after(10s) >> [] { FAIL() << "no node_up for the visible node"; });
  bool hidden_seen = false;
  for (auto& p : server->peers())
    if (p.node == client->id())
      hidden_seen = p.hidden;
  EXPECT_TRUE(hidden_seen) << "peers() lists the hidden node, marked";
  // Its leaving raises no node_down either (only monitor_node hears of
  // it); the visible one's does.
  caf::scoped_actor watcher{server->system()};
  server->monitor_node(watcher, client->id());
  client.reset();
  watcher->receive([](const relay::node_down_msg&) {},
                   caf::after(10s) >> [] { FAIL() << "no node_down"; });
  visible.disconnect(server->id());
  observer->receive(
    [&](const relay::node_down_msg& down) {
      EXPECT_EQ(down.node, visible.id());
    },
    caf::after(10s) >> [] { FAIL() << "no node_down for the visible node"; });
}

TEST_F(introspection, node_lists_identity_listeners_and_connections) {
  auto doc = ask("node");
  ASSERT_TRUE(doc) << relay::describe(doc.error());
  EXPECT_EQ((*doc)["name"], "observed");
  EXPECT_EQ((*doc)["pid"], static_cast<int64_t>(::getpid()));
  EXPECT_EQ((*doc)["listen"], json::array({server_uri}));
  ASSERT_EQ((*doc)["peers"].size(), 1u);
  auto& peer = (*doc)["peers"][0];
  EXPECT_EQ(peer["name"], "tool");
  EXPECT_EQ(peer["transport"], "uds");
  EXPECT_EQ(peer["hidden"], true);
  EXPECT_GT(peer["frames_in"].get<uint64_t>(), 0u);
}

TEST_F(introspection, names_lists_published_actors_with_their_interface) {
  auto doc = ask("names");
  ASSERT_TRUE(doc) << relay::describe(doc.error());
  std::map<std::string, json> by_name;
  for (auto& e : (*doc)["published"])
    by_name[e["name"].get<std::string>()] = e;
  ASSERT_EQ(by_name.count("greeter"), 1u);
  EXPECT_EQ(by_name["greeter"]["interface"],
            json::array({"(introspection_test.greeting) -> "
                         "(introspection_test.reply)"}));
  EXPECT_EQ(by_name.count(relay::node::introspection_name), 1u);
  EXPECT_EQ(by_name.count(relay::node::remote_spawner_name), 1u);
}

TEST_F(introspection, stats_are_the_node_counters) {
  auto doc = ask("stats");
  ASSERT_TRUE(doc) << relay::describe(doc.error());
  EXPECT_EQ((*doc)["connected_peers"], 1u);
  EXPECT_EQ((*doc)["protocol_errors"], 0u);
}

TEST_F(introspection, tree_shows_each_supervisor_with_live_restart_counts) {
  caf::scoped_actor reports{server->system()};
  auto sup = start_tree(caf::actor{reports});
  // Wait for the initial starts, then crash worker a and wait for its restart.
  caf::actor victim;
  auto on_report = [&](relay::supervisor_report& r) {
    if (r.what == relay::supervisor_report::kind::started && r.child_id == "a")
      victim = r.child;
  };
  for (int i = 0; i < 3; ++i)
    reports->receive(on_report, caf::after(10s) >> [] { FAIL() << "no report"; });
  ASSERT_TRUE(victim);
  reports->send_exit(victim, caf::exit_reason::kill);
  ASSERT_TRUE(relay::test::wait_restart(reports, "a")) << "a was not restarted";
  auto doc = ask("tree");
  ASSERT_TRUE(doc) << relay::describe(doc.error());
  std::map<std::string, json> sups;
  for (auto& src : (*doc)["sources"])
    if (src["kind"] == "supervisor")
      sups[src["name"].get<std::string>()] = src;
  ASSERT_EQ(sups.size(), 2u) << doc->dump(2);
  auto& outer = sups["outer"];
  EXPECT_EQ(outer["actor"], sup.id());
  EXPECT_EQ(outer["strategy"], "one_for_one");
  EXPECT_EQ(outer["restarts"], 1u);
  ASSERT_EQ(outer["children"].size(), 3u);
  EXPECT_EQ(outer["children"][0]["id"], "a");
  EXPECT_EQ(outer["children"][0]["restarts"], 1u);
  EXPECT_EQ(outer["children"][0]["state"], "running");
  EXPECT_EQ(outer["children"][1]["restarts"], 0u);
  auto& inner_child = outer["children"][2];
  EXPECT_EQ(inner_child["type"], "supervisor");
  EXPECT_EQ(inner_child["actor"], sups["inner"]["actor"]);
  EXPECT_EQ(sups["inner"]["children"][0]["id"], "c");
  // A supervisor that ended drops out.
  reports->send_exit(sup, caf::exit_reason::user_shutdown);
  reports->wait_for(sup);
  doc = ask("tree");
  ASSERT_TRUE(doc);
  EXPECT_TRUE((*doc)["sources"].empty()) << doc->dump(2);
}

TEST_F(introspection, call_sends_a_request_built_from_json) {
  auto args = json{{"name", "greeter"},
                   {"type", "introspection_test.greeting"},
                   {"value", {{"seq", 7}, {"name", "relay"}}}};
  auto doc = ask("call", args.dump());
  ASSERT_TRUE(doc) << relay::describe(doc.error());
  EXPECT_EQ((*doc)["reply"],
            json::array({{{"type", "introspection_test.reply"},
                          {"value", {{"seq", 7}, {"text", "hello relay"}}}}}));
}

TEST_F(introspection, bad_calls_and_topics_get_clear_errors) {
  auto call = [&](const std::string& name, const std::string& type, json value) {
    return ask("call",
               json{{"name", name}, {"type", type}, {"value", value}}.dump());
  };
  auto expect_error = [](const caf::expected<json>& x, relay::errc code,
                         const std::string& text) {
    ASSERT_FALSE(x) << x->dump();
    EXPECT_EQ(x.error(), relay::make_error(code)) << relay::describe(x.error());
    EXPECT_NE(relay::describe(x.error()).find(text), std::string::npos)
      << relay::describe(x.error());
  };
  json good{{"seq", 1}, {"name", "x"}};
  expect_error(call("nobody", "introspection_test.greeting", good),
               relay::errc::name_not_found, "nobody");
  expect_error(call("greeter", "no.such.type", good),
               relay::errc::unregistered_type, "no.such.type");
  expect_error(call("greeter", "introspection_test.opaque", json{{"x", 1}}),
               relay::errc::invalid_argument, "did not opt into JSON");
  expect_error(call("greeter", "introspection_test.greeting",
                    json{{"seq", "one"}, {"name", "x"}}),
               relay::errc::invalid_argument, "introspection_test.greeting");
  expect_error(ask("call", "{not json"), relay::errc::invalid_argument,
               "not JSON");
  expect_error(ask("no-such-topic"), relay::errc::invalid_argument,
               "no-such-topic");
  // The wrong type for the actor: the actor's own error comes back.
  auto wrong = call("greeter", "introspection_test.reply",
                    json{{"seq", 1}, {"text", "x"}});
  EXPECT_FALSE(wrong);
}

TEST_F(introspection, untrusted_peers_get_no_introspection_and_are_never_hidden) {
  auto uri = server->listen(dir.uds("untrusted.sock"),
                            relay::trust_level::untrusted);
  ASSERT_TRUE(uri);
  caf::scoped_actor observer{server->system()};
  server->monitor_nodes(observer);
  auto doc = ask("node", "", *uri);
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error(), relay::make_error(relay::errc::forbidden))
    << relay::describe(doc.error());
  // The client claims to be hidden; from an untrusted peer that is ignored.
  observer->receive(
    [&](const relay::node_up_msg& up) { EXPECT_EQ(up.node, client->id()); },
    caf::after(10s) >> [] { FAIL() << "an untrusted peer hid itself"; });
}

TEST_F(introspection, hostile_names_and_arguments_get_errors_not_crashes) {
  // A peer whose node name is not UTF-8: the documents still serialize.
  relay::node_config odd_cfg;
  odd_cfg.node_name = "odd\xff\xfename";
  relay::node odd{odd_cfg};
  ASSERT_TRUE(odd.connect(server_uri));
  auto doc = ask("node");
  ASSERT_TRUE(doc) << relay::describe(doc.error());
  bool seen = false;
  for (auto& p : (*doc)["peers"])
    seen |= p["name"].get<std::string>().rfind("odd", 0) == 0;
  EXPECT_TRUE(seen) << doc->dump(-1, ' ', false,
                                 json::error_handler_t::replace);
  EXPECT_EQ(relayctl({"nodes", server_uri}).status, 0);
  // JSON nested past the bound is refused before anything recurses on it.
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto call = ask("call", R"({"name": "greeter", "type": "introspection_test.greeting", "value": )"
                            + deep + "}");
  ASSERT_FALSE(call);
  EXPECT_NE(relay::describe(call.error()).find("nested deeper"),
            std::string::npos)
    << relay::describe(call.error());
  // Values of the wrong JSON type for the service's own arguments.
  for (auto args : {R"({"since": "yesterday"})", R"({"name": 7})", "[1, 2]"}) {
    auto mon = ask("monitor", args);
    ASSERT_FALSE(mon) << args;
    EXPECT_EQ(mon.error(), relay::make_error(relay::errc::invalid_argument))
      << relay::describe(mon.error());
  }
  // The service is still there.
  EXPECT_TRUE(ask("stats"));
}

TEST_F(introspection, at_most_sixteen_calls_run_at_once) {
  // An actor that never answers: each call waits for its timeout.
  auto mute = server->system().spawn([](caf::event_based_actor* self) {
    return caf::behavior{
      [self](greeting&) { return self->make_response_promise<reply>(); }};
  });
  ASSERT_FALSE(server->publish(mute, "mute"));
  auto svc = client->lookup(server_uri, relay::node::introspection_name);
  ASSERT_TRUE(svc);
  auto args = json{{"name", "mute"},
                   {"type", "introspection_test.greeting"},
                   {"value", {{"seq", 1}, {"name", "x"}}},
                   {"timeout_ms", 2000}}
                .dump();
  // Seventeen calls at once, from an actor that counts how each ended.
  caf::scoped_actor self{client->system()};
  client->system().spawn(
    [svc = *svc, args, report = caf::actor{self}](caf::event_based_actor* c) {
      struct tally {
        uint64_t overloaded = 0;
        uint64_t timed_out = 0;
        uint64_t other = 0;
      };
      auto t = std::make_shared<tally>();
      for (int i = 0; i < 17; ++i)
        c->request(svc, 10s, relay::introspect_atom::value,
                   std::string{"call"}, args)
          .then([=](std::string&) { ++t->other; },
                [=](caf::error& err) {
                  if (err == relay::make_error(relay::errc::overloaded))
                    ++t->overloaded;
                  else if (err == caf::sec::request_timeout)
                    ++t->timed_out;
                  else
                    ++t->other;
                  if (t->overloaded + t->timed_out + t->other == 17)
                    c->send(report, t->overloaded, t->timed_out, t->other);
                });
    });
  self->receive(
    [](uint64_t overloaded, uint64_t timed_out, uint64_t other) {
      EXPECT_EQ(overloaded, 1u);
      EXPECT_EQ(timed_out, 16u);
      EXPECT_EQ(other, 0u);
    },
    caf::after(30s) >> [] { FAIL() << "the calls did not end"; });
  // The slots are free again.
  auto ok = ask("call", json{{"name", "greeter"},
                             {"type", "introspection_test.greeting"},
                             {"value", {{"seq", 2}, {"name", "y"}}}}
                          .dump());
  EXPECT_TRUE(ok) << relay::describe(ok.error());
}

// -- relayctl, a real process ------------------------------------------------------


TEST_F(introspection, relayctl_shows_nodes_names_tree_and_stats) {
  auto sup = start_tree();
  auto nodes = relayctl({"nodes", server_uri});
  EXPECT_EQ(nodes.status, 0) << nodes.output;
  EXPECT_NE(nodes.output.find("node observed"), std::string::npos)
    << nodes.output;
  EXPECT_NE(nodes.output.find("relayctl (hidden)"), std::string::npos)
    << nodes.output;
  auto names = relayctl({"names", server_uri});
  EXPECT_EQ(names.status, 0) << names.output;
  EXPECT_NE(names.output.find("(introspection_test.greeting) -> "
                              "(introspection_test.reply)"),
            std::string::npos)
    << names.output;
  auto tree = relayctl({"tree", server_uri});
  EXPECT_EQ(tree.status, 0) << tree.output;
  EXPECT_NE(tree.output.find("outer  one_for_one"), std::string::npos)
    << tree.output;
  EXPECT_NE(tree.output.find("   └─ c  running"), std::string::npos)
    << tree.output;
  auto stats = relayctl({"--json", "stats", server_uri});
  ASSERT_EQ(stats.status, 0) << stats.output;
  EXPECT_EQ(json::parse(stats.output)["protocol_errors"], 0u) << stats.output;
  caf::scoped_actor self{server->system()};
  self->send_exit(sup, caf::exit_reason::user_shutdown);
  self->wait_for(sup);
}

TEST_F(introspection, relayctl_call_prints_the_reply_as_json) {
  auto ok = relayctl({"call", server_uri, "greeter",
                      "introspection_test.greeting",
                      R"({"seq": 3, "name": "cli"})"});
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_EQ(json::parse(ok.output),
            (json{{"seq", 3}, {"text", "hello cli"}}))
    << ok.output;
  auto missing = relayctl({"call", server_uri, "nobody",
                           "introspection_test.greeting", "{}"});
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_NE(missing.output.find("name_not_found"), std::string::npos)
    << missing.output;
}

TEST_F(introspection, relayctl_monitor_streams_the_messages_of_an_actor) {
  relay::test::child mon{{RELAYCTL, "monitor", server_uri, "--name", "greeter",
                          "--count", "2"},
                         true};
  auto first = mon.read_line(20s);
  ASSERT_TRUE(first && first->rfind("monitoring ", 0) == 0)
    << first.value_or("(nothing)");
  // A visible node asks the greeter: a greeting in, a reply out. Its lookup
  // and the monitor's own polls are not shown.
  relay::node_config other_cfg;
  add_types(other_cfg);
  relay::node other{other_cfg};
  auto remote = other.lookup<greeter_actor>(server_uri, "greeter");
  ASSERT_TRUE(remote) << relay::describe(remote.error());
  caf::scoped_actor self{other.system()};
  self->request(*remote, 5s, greeting{1, "monitor"})
    .receive([](reply&) {},
             [](caf::error& err) { FAIL() << relay::describe(err); });
  auto in = mon.read_line(20s);
  auto out = mon.read_line(20s);
  ASSERT_TRUE(in && out);
  EXPECT_NE(in->find("  in  "), std::string::npos) << *in;
  EXPECT_NE(in->find("introspection_test.greeting"), std::string::npos) << *in;
  EXPECT_NE(out->find("  out  "), std::string::npos) << *out;
  EXPECT_NE(out->find("introspection_test.reply"), std::string::npos) << *out;
  EXPECT_EQ(mon.stop(0, 20s), 0);
}

TEST_F(introspection, relayctl_exit_codes_say_what_went_wrong) {
  EXPECT_EQ(relayctl({"nodes"}).status, 2) << "missing URI";
  EXPECT_EQ(relayctl({"frobnicate", server_uri}).status, 2);
  EXPECT_EQ(relayctl({"call", server_uri, "greeter", "t", "{bad"}).status, 2);
  auto gone = relayctl({"--timeout", "2000", "nodes", dir.uds("nobody.sock")});
  EXPECT_EQ(gone.status, 3) << gone.output;
  EXPECT_NE(gone.output.find("nobody.sock"), std::string::npos) << gone.output;
  EXPECT_EQ(relayctl({"--help"}).status, 0);
  // A malformed URI is bad usage; a type nobody registered is the node's
  // error, for monitor as for call.
  EXPECT_EQ(relayctl({"nodes", "/tmp/no-scheme.sock"}).status, 2);
  EXPECT_EQ(relayctl({"monitor", server_uri, "--type", "no.such.type"}).status,
            1);
  // The actor's silence is the node's answer (exit 1), not the node's.
  auto mute = server->system().spawn([](caf::event_based_actor* self) {
    return caf::behavior{
      [self](greeting&) { return self->make_response_promise<reply>(); }};
  });
  ASSERT_FALSE(server->publish(mute, "mute"));
  auto slow = relayctl({"call", server_uri, "mute",
                        "introspection_test.greeting",
                        R"({"seq": 1, "name": "x"})", "--call-timeout", "50"});
  EXPECT_EQ(slow.status, 1) << slow.output;
  EXPECT_NE(slow.output.find("did not answer within 50 ms"), std::string::npos)
    << slow.output;
  // A value of the wrong JSON type for a field says so.
  auto wrong = relayctl({"call", server_uri, "greeter",
                         "introspection_test.greeting",
                         R"({"seq": "one", "name": "x"})"});
  EXPECT_EQ(wrong.status, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("wrong JSON type"), std::string::npos)
    << wrong.output;
}

// -- relayctl on the samples ---------------------------------------------------------

namespace samples {

/// Reads `proc`'s lines until one starts with `prefix`; returns the rest.
TEST(introspection_samples, relayctl_tree_of_the_supervised_pipeline) {
  temp_dir dir;
  relay::test::child pipeline{{RELAY_SUPERVISED_PIPELINE, "--jobs", "2000",
                               "--crash-rate", "0.02", "--listen",
                               dir.uds("pipeline.sock")}};
  auto uri = relay::test::wait_line(pipeline, "listening on ");
  ASSERT_TRUE(uri);
  ASSERT_TRUE(relay::test::wait_line(pipeline, "finished; stop with SIGTERM"));
  auto tree = relayctl({"tree", *uri});
  EXPECT_EQ(tree.status, 0) << tree.output;
  EXPECT_NE(tree.output.find("pool  one_for_one"), std::string::npos)
    << tree.output;
  for (auto id : {"worker-0", "worker-3"})
    EXPECT_NE(tree.output.find(std::string{id} + "  running  permanent"),
              std::string::npos)
      << tree.output;
  // 2000 jobs at a crash rate of 2 %: the pool restarted workers.
  auto doc = relayctl({"--json", "tree", *uri});
  ASSERT_EQ(doc.status, 0) << doc.output;
  auto pool = json::parse(doc.output)["sources"][0];
  EXPECT_EQ(pool["name"], "pool");
  EXPECT_GT(pool["restarts"].get<uint64_t>(), 0u) << doc.output;
  uint64_t sum = 0;
  for (auto& c : pool["children"])
    sum += c["restarts"].get<uint64_t>();
  EXPECT_EQ(sum, pool["restarts"].get<uint64_t>());
  EXPECT_EQ(pipeline.stop(SIGTERM, 20s), 0);
}

TEST(introspection_samples, relayctl_tree_of_the_multiprocess_sample_shows_pids) {
  relay::test::child coordinator{{RELAY_MP_COORDINATOR, "--items", "100"}};
  std::optional<std::string> uri;
  while (auto line = coordinator.read_line(30s)) {
    auto prefix = std::string{"coordinator listening on "};
    if (line->rfind(prefix, 0) == 0 && line->find("uds://") != std::string::npos)
      uri = line->substr(prefix.size());
    if (line->rfind("{\"items\"", 0) == 0)
      break;
  }
  ASSERT_TRUE(uri) << "the coordinator printed no uds address";
  auto tree = relayctl({"--json", "tree", *uri});
  ASSERT_EQ(tree.status, 0) << tree.output;
  std::set<uint64_t> process_actors;
  auto doc = json::parse(tree.output);
  for (auto& src : doc["sources"])
    if (src["kind"] == "process") {
      EXPECT_GT(src["pid"].get<int>(), 0);
      EXPECT_EQ(src["ready"], true);
      process_actors.insert(src["actor"].get<uint64_t>());
    }
  EXPECT_EQ(process_actors.size(), 4u) << tree.output;
  auto text = relayctl({"tree", *uri});
  EXPECT_EQ(text.status, 0) << text.output;
  EXPECT_NE(text.output.find("  pid "), std::string::npos) << text.output;
  EXPECT_EQ(coordinator.stop(SIGTERM, 20s), 0);
}

} // namespace samples

} // namespace
