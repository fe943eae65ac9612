// Cluster membership with real node processes on loopback tcp, every
// connection through a fault-injection proxy the test controls. Each test
// synchronises on the lines the nodes print (see cluster_node.cpp); every
// wait is bounded; the nodes are killed and reaped at the end.
//
// The membership, name and group tests and the CPU-hog run go on both
// backends (the parameter): embedded, and etcd with a real etcd-server on
// a loopback port (one for the suite, a key prefix per test). The scale
// and detection-time runs measure the detector and the mesh, which both
// backends share, on the embedded one.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "etcd_client.hpp"
#include "etcd_server.hpp"
#include "fault_proxy.hpp"
#include "relay/error.hpp"

using namespace std::chrono_literals;
using relay::test::fault_proxy;

namespace {

using steady = std::chrono::steady_clock;

constexpr const char* secret = "cluster-test-secret-0123456789";

struct node_options {
  int down_after_ms = 10000;
  // Members dial each other directly, not through the proxy (scale runs).
  bool direct = false;
  // Detector settings (-1: the defaults).
  int acceptable_pause_ms = -1;
  std::string cluster = "test";
  std::string cookie = secret;
};

// One node process, its proxy port and what it printed.
struct node_proc {
  std::string name;
  std::string ip;        // its source address
  std::string address;   // what it advertises (its proxy port)
  std::unique_ptr<relay::test::child> proc;
  std::vector<std::string> seen; // event lines read so far

  // Reads lines until one equals `line` (or starts with it when `prefix`);
  // returns whether it came before `deadline`.
  bool wait_for(const std::string& line, steady::time_point deadline,
                bool prefix = false) {
    for (auto& s : seen)
      if (s == line || (prefix && s.rfind(line, 0) == 0))
        return true;
    while (steady::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - steady::now());
      auto got = proc->read_line(std::max(left, 1ms));
      if (!got)
        return false;
      seen.push_back(*got);
      if (*got == line || (prefix && got->rfind(line, 0) == 0))
        return true;
    }
    return false;
  }

  // Sends `command` and returns the first line after it that starts with
  // one of `prefixes` (empty if none within `bound`).
  std::string ask(const std::string& command,
                  std::vector<std::string> prefixes,
                  std::chrono::milliseconds bound = 10s) {
    auto first = seen.size();
    proc->write_line(command);
    auto deadline = steady::now() + bound;
    for (size_t i = first;; ++i) {
      while (i >= seen.size()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - steady::now());
        if (left.count() <= 0)
          return "";
        auto got = proc->read_line(left);
        if (!got)
          return "";
        seen.push_back(*got);
      }
      for (auto& p : prefixes)
        if (seen[i].rfind(p, 0) == 0)
          return seen[i];
    }
  }

  // Asks until the answer is `expected` or `bound` passes (a poll of state
  // that converges by gossip). Returns the last answer.
  std::string ask_until(const std::string& command, const std::string& prefix,
                        const std::string& expected,
                        std::chrono::milliseconds bound = 10s) {
    auto deadline = steady::now() + bound;
    std::string last;
    while (steady::now() < deadline) {
      last = ask(command, {prefix});
      if (last == expected)
        break;
      std::this_thread::sleep_for(50ms);
    }
    return last;
  }

  // Forgets the lines read so far: later waits see only newer ones.
  void forget() {
    seen.clear();
  }

  // Reads everything printed so far (a command's answer comes after it),
  // then forgets it.
  void sync() {
    ask("members", {"members"});
    forget();
  }

  // The next "members ..." answer, its entries sorted by name.
  std::string members() {
    auto raw = members_raw();
    std::vector<std::string> words;
    for (size_t pos = 0; pos < raw.size();) {
      auto end = raw.find(' ', pos);
      if (end == std::string::npos)
        end = raw.size();
      words.push_back(raw.substr(pos, end - pos));
      pos = end + 1;
    }
    if (words.empty())
      return raw;
    std::sort(words.begin() + 1, words.end());
    std::string result;
    for (auto& w : words)
      result += (result.empty() ? "" : " ") + w;
    return result;
  }

  // Asks for the members until the answer is `expected` or `bound`
  // passes (a poll of state that converges by gossip; no fixed sleep
  // decides anything). Returns the last answer.
  std::string wait_members(const std::string& expected,
                           std::chrono::milliseconds bound = 10s) {
    auto deadline = steady::now() + bound;
    std::string last;
    while (steady::now() < deadline) {
      last = members();
      if (last == expected)
        break;
      std::this_thread::sleep_for(50ms);
    }
    return last;
  }

  std::string members_raw() {
    seen.erase(std::remove_if(seen.begin(), seen.end(),
                              [](const std::string& s) {
                                return s.rfind("members ", 0) == 0;
                              }),
               seen.end());
    proc->write_line("members");
    if (!wait_for("members", steady::now() + 5s, true))
      return "(no answer)";
    for (auto& s : seen)
      if (s.rfind("members", 0) == 0)
        return s;
    return "";
  }
};

class cluster_fixture : public testing::Test {
protected:
  static void SetUpTestSuite() {
    std::signal(SIGPIPE, SIG_IGN); // a dead node's stdin
  }

  static void TearDownTestSuite() {
    etcd_.reset();
  }

  // Whether the nodes use the etcd backend (set by the parameterised
  // fixture before the test body runs).
  bool etcd() const {
    return backend_ == "etcd";
  }

  void use_etcd();

  // Starts node `name` (not yet joined); its proxy port is what it
  // advertises and what the others dial.
  node_proc& start(const std::string& name, node_options opts = {}) {
    auto& n = nodes_[name];
    n.name = name;
    if (n.ip.empty()) {
      n.ip = "127.0.0." + std::to_string(10 + nodes_.size());
      auto port = proxy_.add_node(name, n.ip);
      n.address = "tcp://127.0.0.1:" + std::to_string(port);
    }
    n.seen.clear();
    setenv("RELAY_COOKIE", opts.cookie.c_str(), 1);
    std::vector<std::string> args{RELAY_CLUSTER_NODE, "--name", name,
                                  "--cluster", opts.cluster,
                                  "--down-after-ms",
                                  std::to_string(opts.down_after_ms)};
    if (etcd())
      args.insert(args.end(), {"--backend", "etcd", "--etcd", etcd_->url(),
                               "--etcd-prefix", etcd_prefix_,
                               "--lease-ttl-s", "2"});
    if (opts.acceptable_pause_ms >= 0)
      args.insert(args.end(), {"--acceptable-pause-ms",
                               std::to_string(opts.acceptable_pause_ms)});
    if (!opts.direct) {
      args.insert(args.end(), {"--advertise", n.address, "--source", n.ip});
    }
    n.proc = std::make_unique<relay::test::child>(args, false, true);
    setenv("RELAY_COOKIE", secret, 1);
    auto line = n.proc->read_line(10s);
    EXPECT_TRUE(line && line->rfind("listening tcp://", 0) == 0)
      << (line ? *line : "(nothing)");
    if (line) {
      auto port = line->substr(line->rfind(':') + 1);
      if (opts.direct)
        n.address = line->substr(10);
      else
        proxy_.set_target(name, static_cast<uint16_t>(std::stoi(port)));
    }
    return n;
  }

  node_proc& operator[](const std::string& name) {
    return nodes_.at(name);
  }

  // Starts `names` and joins them through the first, which forms the
  // cluster; waits until every node sees every node up.
  void form(const std::vector<std::string>& names, node_options opts = {}) {
    for (auto& name : names)
      start(name, opts);
    auto seed = nodes_[names.front()].address;
    for (auto& name : names)
      nodes_[name].proc->write_line("join " + seed);
    auto deadline = steady::now() + 20s;
    for (auto& observer : names)
      for (auto& member : names)
        ASSERT_TRUE(nodes_[observer].wait_for(
          "event up " + member + " " + nodes_[member].address, deadline))
          << observer << " never saw " << member << " up";
    // And the mesh is complete: every node connected to every other.
    for (auto& observer : names)
      for (auto& member : names)
        if (member != observer) {
          ASSERT_TRUE(nodes_[observer].wait_for("node-up " + member, deadline))
            << observer << " never connected to " << member;
        }
  }

  // Waits until each of `observers` prints `what` about `subject`; returns
  // the longest time it took from `since`.
  std::optional<std::chrono::milliseconds>
  all_see(const std::vector<std::string>& observers, const std::string& what,
          const std::string& subject, steady::time_point since,
          std::chrono::milliseconds bound) {
    std::chrono::milliseconds slowest{0};
    for (auto& o : observers) {
      auto line = "event " + what + " " + subject + " "
                  + nodes_.at(subject).address;
      if (!nodes_.at(o).wait_for(line, since + bound)) {
        ADD_FAILURE() << o << " did not print '" << line << "' within "
                      << bound.count() << " ms";
        return std::nullopt;
      }
      slowest = std::max(slowest,
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                           steady::now() - since));
    }
    return slowest;
  }

  fault_proxy proxy_;
  std::map<std::string, node_proc> nodes_;
  std::string backend_ = "embedded";
  std::string etcd_prefix_;
  // One etcd-server for the suite, started by the first test that needs it.
  static std::unique_ptr<relay::test::etcd_server> etcd_;
};

std::unique_ptr<relay::test::etcd_server> cluster_fixture::etcd_;

// Makes the nodes of this test use etcd (started on first use), under a
// key prefix of the test's own: no test sees another's keys.
void cluster_fixture::use_etcd() {
  backend_ = "etcd";
  if (!etcd_)
    etcd_ = std::make_unique<relay::test::etcd_server>();
  static int count = 0;
  etcd_prefix_ = "/relay-test-" + std::to_string(++count) + "/";
}

// The tests that run on both backends.
class cluster_test : public cluster_fixture,
                     public testing::WithParamInterface<std::string> {
protected:
  void SetUp() override {
    if (GetParam() == "etcd")
      use_etcd();
  }
};

INSTANTIATE_TEST_SUITE_P(backends, cluster_test,
                         testing::Values("embedded", "etcd"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// Load and scale, on the embedded backend.
class cluster_load_test : public cluster_fixture {};

} // namespace

TEST_P(cluster_test, nodes_join_through_one_seed_and_see_each_other) {
  form({"a", "b", "c"});
  // b and c only knew a; they connected to each other through gossip.
  for (auto name : {"a", "b", "c"})
    EXPECT_EQ((*this)[name].members(),
              "members a:up:reachable b:up:reachable c:up:reachable")
      << name;
}

// relayctl on a member: the members and the cluster-wide names, as a
// hidden node that no member sees come or go (docs/operations.md).
TEST_P(cluster_test, relayctl_shows_members_and_names_and_stays_hidden) {
  node_options opts;
  opts.direct = true;
  form({"a", "b"}, opts);
  auto& a = (*this)["a"];
  auto& b = (*this)["b"];
  ASSERT_EQ(a.ask("register billing", {"registered", "error"}),
            "registered billing");
  // The secret comes from $RELAY_COOKIE, as for the nodes.
  auto [nodes_status, nodes] = relay::test::run({RELAYCTL, "nodes", b.address});
  EXPECT_EQ(nodes_status, 0) << nodes;
  EXPECT_NE(nodes.find("cluster members"), std::string::npos) << nodes;
  // One row per member: name, address, status, reachable.
  for (auto* m : {&a, &b}) {
    bool found = false;
    std::istringstream rows{nodes};
    for (std::string row; std::getline(rows, row);)
      found |= row.rfind(m->name + " ", 0) == 0
               && row.find(m->address) != std::string::npos
               && row.find(" up ") != std::string::npos
               && row.find(" yes ") != std::string::npos;
    EXPECT_TRUE(found) << m->name << " in\n" << nodes;
  }
  auto [names_status, names] = relay::test::run({RELAYCTL, "names", b.address});
  EXPECT_EQ(names_status, 0) << names;
  EXPECT_NE(names.find("cluster-wide names"), std::string::npos) << names;
  EXPECT_NE(names.find("billing"), std::string::npos) << names;
  // Still two members, and no member saw relayctl's connection as a node.
  EXPECT_EQ(b.members(), "members a:up:reachable b:up:reachable");
  for (auto* n : {&a, &b}) {
    n->ask("members", {"members"}); // reads all it printed so far
    for (auto& line : n->seen)
      EXPECT_EQ(line.find("relayctl"), std::string::npos) << line;
  }
}

TEST_P(cluster_test, a_killed_node_is_detected_and_removed_everywhere) {
  node_options opts;
  opts.down_after_ms = 1000;
  form({"a", "b", "c", "d"}, opts);
  auto t0 = steady::now();
  (*this)["d"].proc->signal(SIGKILL);
  auto detected = all_see({"a", "b", "c"}, "unreachable", "d", t0, 2s);
  ASSERT_TRUE(detected);
  std::cout << "[ figures  ] kill -9 detected on every member after "
            << detected->count() << " ms\n";
  ASSERT_TRUE(all_see({"a", "b", "c"}, "down", "d", t0, 10s));
  ASSERT_TRUE(all_see({"a", "b", "c"}, "removed", "d", t0, 10s));
  EXPECT_EQ((*this)["b"].members(),
            "members a:up:reachable b:up:reachable c:up:reachable");
}

TEST_P(cluster_test, a_partition_healed_before_down_after_changes_nothing) {
  node_options opts;
  opts.down_after_ms = 15000;
  form({"a", "b", "c"}, opts);
  auto t0 = steady::now();
  proxy_.partition({"c"}, {"a", "b"});
  // Silence, not a closed socket: the phi-accrual detector decides.
  auto detected = all_see({"a", "b"}, "unreachable", "c", t0, 2500ms);
  ASSERT_TRUE(detected);
  std::cout << "[ figures  ] partition detected after " << detected->count()
            << " ms\n";
  ASSERT_TRUE((*this)["c"].wait_for("event unreachable a " + (*this)["a"].address,
                                    t0 + 2500ms));
  proxy_.heal();
  auto t1 = steady::now();
  ASSERT_TRUE(all_see({"a", "b"}, "reachable", "c", t1, 10s));
  ASSERT_TRUE(all_see({"c"}, "reachable", "a", t1, 10s));
  // c's own observations from the partition reach a and b when it
  // reconnects, and are retracted when its detectors hear from them again.
  for (auto name : {"a", "b", "c"})
    EXPECT_EQ((*this)[name].wait_members(
                "members a:up:reachable b:up:reachable c:up:reachable"),
              "members a:up:reachable b:up:reachable c:up:reachable")
      << name;
  for (auto name : {"a", "b", "c"})
    for (auto& line : (*this)[name].seen)
      EXPECT_EQ(line.find("event down"), std::string::npos) << name;
}

TEST_P(cluster_test, a_partition_past_down_after_removes_the_minority) {
  node_options opts;
  opts.down_after_ms = 1500;
  form({"a", "b", "c"}, opts);
  auto t0 = steady::now();
  proxy_.partition({"c"}, {"a", "b"});
  ASSERT_TRUE(all_see({"a", "b"}, "removed", "c", t0, 10s));
  // c, on the minority side, took itself out.
  ASSERT_TRUE(all_see({"c"}, "removed", "c", t0, 10s));
  auto& a = (*this)["a"];
  a.forget();
  proxy_.heal();
  // After the heal c stays out: it cannot come back as this incarnation.
  auto until = steady::now() + 2s;
  EXPECT_FALSE(a.wait_for("event joining c " + (*this)["c"].address, until));
  EXPECT_EQ(a.members(), "members a:up:reachable b:up:reachable");
}

TEST_P(cluster_test, a_graceful_leave_is_removed_at_once) {
  form({"a", "b", "c"});
  auto t0 = steady::now();
  (*this)["c"].proc->write_line("leave");
  ASSERT_TRUE(all_see({"a", "b"}, "left", "c", t0, 2s));
  auto removed = all_see({"a", "b"}, "removed", "c", t0, 2s);
  ASSERT_TRUE(removed);
  // c itself hears of its removal from the leader and finishes at once
  // (its 2 s bound is only for a cluster without a leader).
  ASSERT_TRUE(all_see({"c"}, "removed", "c", t0, 1s));
  EXPECT_TRUE((*this)["c"].wait_for("left", t0 + 1s));
  // No unreachable in between: leaving is not failing.
  for (auto name : {"a", "b"})
    for (auto& line : (*this)[name].seen)
      EXPECT_NE(line, "event unreachable c " + (*this)["c"].address) << name;
}

TEST_P(cluster_test, a_restarted_node_is_a_new_incarnation) {
  form({"a", "b", "c"});
  auto& c = (*this)["c"];
  c.proc->signal(SIGKILL);
  auto t0 = steady::now();
  ASSERT_TRUE(all_see({"a", "b"}, "unreachable", "c", t0, 2s));
  // From here on, only what the new incarnation causes counts.
  (*this)["a"].sync();
  (*this)["b"].sync();
  // Same name, same address, new process.
  start("c");
  c.proc->write_line("join " + (*this)["a"].address);
  // The old incarnation is downed at once, the new one joins.
  ASSERT_TRUE(all_see({"a", "b"}, "down", "c", t0, 5s));
  ASSERT_TRUE(all_see({"a", "b"}, "up", "c", t0, 10s));
  ASSERT_TRUE(c.wait_for("event up c " + c.address, t0 + 10s));
  for (auto name : {"a", "b", "c"})
    EXPECT_EQ((*this)[name].wait_members(
                "members a:up:reachable b:up:reachable c:up:reachable"),
              "members a:up:reachable b:up:reachable c:up:reachable")
      << name;
}

TEST_P(cluster_test, another_cluster_or_secret_is_refused_with_a_clear_error) {
  form({"a"});
  node_options other;
  other.cluster = "other";
  auto& x = start("x", other);
  x.proc->write_line("join " + (*this)["a"].address);
  if (etcd()) {
    // Another cluster is another key prefix in etcd: x forms its own and
    // never meets a.
    ASSERT_TRUE(x.wait_for("event up x " + x.address, steady::now() + 10s));
    EXPECT_EQ(x.members(), "members x:up:reachable");
  } else {
    x.proc->write_line("wait-up");
    ASSERT_TRUE(x.wait_for("error ", steady::now() + 10s, true));
    EXPECT_NE(x.seen.back().find("cluster 'test'"), std::string::npos)
      << x.seen.back();
  }
  node_options wrong;
  wrong.cookie = "another-secret-of-enough-length";
  auto& y = start("y", wrong);
  y.proc->write_line("join " + (*this)["a"].address);
  y.proc->write_line("wait-up");
  ASSERT_TRUE(y.wait_for("error ", steady::now() + 10s, true));
  EXPECT_NE(y.seen.back().find("authentication"), std::string::npos)
    << y.seen.back();
  EXPECT_EQ((*this)["a"].members(), "members a:up:reachable");
}

// -- cluster-wide names -------------------------------------------------------

TEST_P(cluster_test, a_name_resolves_everywhere_and_goes_with_its_holder) {
  form({"a", "b", "c"});
  auto& a = (*this)["a"];
  auto& b = (*this)["b"];
  auto& c = (*this)["c"];
  ASSERT_EQ(a.ask("register svc", {"registered", "error"}), "registered svc");
  // Known everywhere as soon as the registration returned.
  EXPECT_EQ(b.ask("whereis svc", {"whereis"}), "whereis svc a");
  EXPECT_EQ(c.ask("whereis svc", {"whereis"}), "whereis svc a");
  // Nobody else can take it.
  auto taken = b.ask("register svc", {"registered", "error"});
  EXPECT_EQ(taken.rfind("error relay.already_registered", 0), 0u) << taken;
  // It goes when the holder exits ...
  a.ask("stop svc", {"stopped"});
  EXPECT_EQ(b.ask_until("whereis svc", "whereis", "whereis svc none"),
            "whereis svc none");
  EXPECT_EQ(c.ask_until("whereis svc", "whereis", "whereis svc none"),
            "whereis svc none");
  // ... and with its node.
  ASSERT_EQ(c.ask("register db", {"registered", "error"}), "registered db");
  EXPECT_EQ(a.ask("whereis db", {"whereis"}), "whereis db c");
  c.proc->signal(SIGKILL);
  EXPECT_EQ(a.ask_until("whereis db", "whereis", "whereis db none", 3s),
            "whereis db none");
  EXPECT_EQ(b.ask_until("whereis db", "whereis", "whereis db none", 3s),
            "whereis db none");
}

TEST_P(cluster_test, concurrent_registrations_of_one_name_have_one_winner) {
  form({"a", "b", "c"});
  auto& a = (*this)["a"];
  auto& b = (*this)["b"];
  auto& c = (*this)["c"];
  for (int round = 0; round < 5; ++round) {
    auto name = "n" + std::to_string(round);
    // All three at once.
    for (auto* x : {&a, &b, &c})
      x->proc->write_line("register " + name);
    int won = 0, refused = 0;
    for (auto* x : {&a, &b, &c}) {
      auto line = x->ask("members", {"registered " + name, "error"});
      if (line == "registered " + name)
        ++won;
      else if (line.find("already_registered") != std::string::npos)
        ++refused;
    }
    EXPECT_EQ(won, 1) << name;
    EXPECT_EQ(refused, 2) << name;
    auto owner = a.ask("whereis " + name, {"whereis"});
    EXPECT_EQ(b.ask("whereis " + name, {"whereis"}), owner);
    EXPECT_EQ(c.ask("whereis " + name, {"whereis"}), owner);
  }
}

TEST_P(cluster_test, a_name_taken_on_both_sides_of_a_partition_keeps_one_owner) {
  node_options opts;
  opts.down_after_ms = 60000; // the partition heals long before
  form({"a", "b", "c"}, opts);
  auto& a = (*this)["a"];
  auto& b = (*this)["b"];
  auto& c = (*this)["c"];
  auto t0 = steady::now();
  proxy_.partition({"c"}, {"a", "b"});
  ASSERT_TRUE(all_see({"a", "b"}, "unreachable", "c", t0, 3s));
  ASSERT_TRUE(all_see({"c"}, "unreachable", "a", t0, 3s));
  ASSERT_TRUE(all_see({"c"}, "unreachable", "b", t0, 3s));
  ASSERT_EQ(a.ask("register x", {"registered", "error"}), "registered x");
  if (etcd()) {
    // etcd is linearizable: c's side cannot take a name a holds, whether
    // or not it reaches a.
    auto refused = c.ask("register x", {"registered", "error"});
    EXPECT_EQ(refused.rfind("error relay.already_registered", 0), 0u)
      << refused;
    EXPECT_NE(refused.find("on node"), std::string::npos) << refused;
    proxy_.heal();
    for (auto* x : {&a, &b, &c})
      EXPECT_EQ(x->ask_until("whereis x", "whereis", "whereis x a", 15s),
                "whereis x a");
    for (auto* x : {&a, &c})
      for (auto& line : x->seen)
        EXPECT_NE(line, "conflict x");
    return;
  }
  // Each side agrees among the members it reaches.
  ASSERT_EQ(c.ask("register x", {"registered", "error"}), "registered x");
  EXPECT_EQ(b.ask("whereis x", {"whereis"}), "whereis x a");
  EXPECT_EQ(c.ask("whereis x", {"whereis"}), "whereis x c");
  proxy_.heal();
  // One owner remains, the same on every node, and the loser was told.
  auto settled = a.ask_until("whereis x", "whereis", "whereis x a", 15s);
  auto on_c = c.ask_until("whereis x", "whereis", settled, 15s);
  EXPECT_EQ(on_c, settled);
  EXPECT_EQ(b.ask_until("whereis x", "whereis", settled, 15s), settled);
  auto loser = settled == "whereis x a" ? &c : &a;
  EXPECT_TRUE(loser->wait_for("conflict x", steady::now() + 10s));
  auto winner = loser == &c ? &a : &c;
  for (auto& line : winner->seen)
    EXPECT_NE(line, "conflict x");
}

// -- process groups -------------------------------------------------------------

TEST_P(cluster_test, groups_span_the_cluster_and_lose_a_dead_nodes_members) {
  form({"a", "b", "c"});
  auto& a = (*this)["a"];
  auto& b = (*this)["b"];
  auto& c = (*this)["c"];
  for (auto* x : {&a, &b, &c})
    ASSERT_EQ(x->ask("join-group workers", {"joined", "error"}),
              "joined workers");
  for (auto* x : {&a, &b, &c})
    EXPECT_EQ(x->ask_until("group workers", "group", "group workers a b c"),
              "group workers a b c");
  // One key, one member, on every node.
  auto chosen = a.ask("pick workers consistent_hash job-42", {"pick"});
  EXPECT_EQ(b.ask("pick workers consistent_hash job-42", {"pick"}), chosen);
  EXPECT_EQ(c.ask("pick workers consistent_hash job-42", {"pick"}), chosen);
  // Round-robin visits every member.
  std::set<std::string> visited;
  for (int i = 0; i < 3; ++i)
    visited.insert(a.ask("pick workers round_robin -", {"pick"}));
  EXPECT_EQ(visited.size(), 3u);
  // A dead node's members leave the group everywhere.
  c.proc->signal(SIGKILL);
  EXPECT_EQ(a.ask_until("group workers", "group", "group workers a b", 3s),
            "group workers a b");
  EXPECT_EQ(b.ask_until("group workers", "group", "group workers a b", 3s),
            "group workers a b");
}

// On both backends: with etcd, the lease's keep-alive must survive the load
// too (a lost lease would show as "event down").
TEST_P(cluster_test, no_false_suspicion_with_both_cores_busy) {
  form({"a", "b", "c"});
  // A CPU hog per core, beside the cluster, for 30 s.
  std::atomic<bool> stop{false};
  std::vector<std::thread> hogs;
  auto cores = std::max(2u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < cores; ++i)
    hogs.emplace_back([&stop] {
      volatile uint64_t x = 0;
      while (!stop.load(std::memory_order_relaxed))
        x = x + 1;
    });
  auto until = steady::now() + 30s;
  // Any suspicion would print an event; none may come.
  for (auto name : {"a", "b", "c"}) {
    auto& n = (*this)[name];
    n.forget();
  }
  bool suspected = (*this)["a"].wait_for("event unreachable", until, true);
  stop = true;
  for (auto& t : hogs)
    t.join();
  size_t suspicions = 0;
  for (auto name : {"a", "b", "c"}) {
    auto& n = (*this)[name];
    n.wait_for("(drain)", steady::now() + 200ms); // read what is pending
    for (auto& line : n.seen)
      if (line.rfind("event unreachable", 0) == 0
          || line.rfind("event down", 0) == 0)
        ++suspicions;
  }
  std::cout << "[ figures  ] suspicions in 30 s with " << cores
            << " busy cores (" << GetParam() << "): " << suspicions << "\n";
  EXPECT_FALSE(suspected);
  EXPECT_EQ(suspicions, 0u);
}

// -- etcd only: leases, and what a stranger writes into etcd -----------------

namespace {

class cluster_etcd_test : public cluster_fixture {
protected:
  void SetUp() override {
    use_etcd();
  }

  // A client of the test's own, to read and write the nodes' keys.
  relay::cluster_detail::etcd_client client() {
    return relay::cluster_detail::etcd_client{{etcd_->url()}, 2000ms};
  }

  std::string members_dir() const {
    return etcd_prefix_ + "test/membership/members/";
  }
};

} // namespace

TEST_F(cluster_etcd_test, a_dead_nodes_names_expire_with_its_lease) {
  node_options opts;
  opts.down_after_ms = 60000; // only the lease can remove c here
  form({"a", "b", "c"}, opts);
  auto& a = (*this)["a"];
  auto& c = (*this)["c"];
  ASSERT_EQ(c.ask("register db", {"registered", "error"}), "registered db");
  auto t0 = steady::now();
  c.proc->signal(SIGKILL);
  ASSERT_TRUE(all_see({"a", "b"}, "unreachable", "c", t0, 2s));
  // Until its lease expires, etcd still says c holds the name.
  auto early = a.ask("register db", {"registered", "error"});
  if (early != "registered db") { // (unless the lease already expired)
    EXPECT_EQ(early.rfind("error relay.already_registered", 0), 0u) << early;
  }
  // The lease (2 s) expires: c is down and removed, and the name is free.
  auto removed = all_see({"a", "b"}, "removed", "c", t0, 8s);
  ASSERT_TRUE(removed);
  std::cout << "[ figures  ] removed by lease expiry after "
            << removed->count() << " ms\n";
  ASSERT_TRUE(all_see({"a", "b"}, "down", "c", t0, 1s));
  if (early != "registered db") {
    EXPECT_EQ(a.ask_until("register db", "", "registered db", 5s),
              "registered db");
  }
  EXPECT_EQ((*this)["b"].ask_until("whereis db", "whereis", "whereis db a"),
            "whereis db a");
}

TEST_F(cluster_etcd_test, a_node_whose_lease_is_revoked_is_removed_everywhere) {
  form({"a", "b", "c"});
  // Someone (an operator, or etcd after an outage) ends c's lease.
  auto etcd = client();
  auto keys = etcd.range(members_dir(), true);
  ASSERT_TRUE(keys) << relay::describe(keys.error());
  int64_t lease = 0;
  for (auto& kv : keys->kvs)
    if (kv.value.find("\"name\":\"c\"") != std::string::npos)
      lease = kv.lease;
  ASSERT_NE(lease, 0);
  auto t0 = steady::now();
  ASSERT_FALSE(etcd.revoke(lease));
  ASSERT_TRUE(all_see({"a", "b", "c"}, "down", "c", t0, 5s));
  ASSERT_TRUE(all_see({"a", "b", "c"}, "removed", "c", t0, 5s));
  EXPECT_EQ((*this)["a"].wait_members("members a:up:reachable b:up:reachable"),
            "members a:up:reachable b:up:reachable");
}

TEST_F(cluster_etcd_test, a_stranger_that_started_first_blocks_joiners_while_it_lives) {
  // x, with another secret, is the only member.
  node_options wrong;
  wrong.cookie = "another-secret-of-enough-length";
  auto& x = start("x", wrong);
  ASSERT_TRUE(x.wait_for("event up x " + x.address, steady::now() + 10s));
  // a is refused by the only member there is, and says by whom.
  auto& a = start("a");
  a.proc->write_line("wait-up");
  ASSERT_TRUE(a.wait_for("error ", steady::now() + 10s, true));
  EXPECT_NE(a.seen.back().find("member " + x.address + " refused"),
            std::string::npos)
    << a.seen.back();
  // Once x is gone (its lease expires), a asks again and joins; b then
  // joins through a.
  x.proc->signal(SIGKILL);
  ASSERT_TRUE(a.wait_for("event up a " + a.address, steady::now() + 15s));
  auto& b = start("b");
  ASSERT_TRUE(b.wait_for("event up b " + b.address, steady::now() + 10s));
  EXPECT_EQ(b.wait_members("members a:up:reachable b:up:reachable"),
            "members a:up:reachable b:up:reachable");
}

TEST_F(cluster_etcd_test, keys_that_are_not_members_are_logged_and_ignored) {
  form({"a", "b"});
  auto etcd = client();
  auto put = [&](const std::string& key, const std::string& value) {
    auto done = etcd.put(key, value);
    ASSERT_TRUE(done) << relay::describe(done.error());
  };
  auto dir = members_dir();
  put(dir + "not-a-node-id", R"({"name":"x","address":"tcp://x:1","status":"up"})");
  put(dir + "0123456789abcdef0123456789abcdef01234567#77", "{not json");
  put(dir + "0123456789abcdef0123456789abcdef01234568#78",
      R"({"name":"y","address":"tcp://y:1","status":"emperor"})");
  put(dir + "0123456789abcdef0123456789abcdef01234569#79",
      R"({"name":")" + std::string(5000, 'n')
        + R"(","address":"tcp://z:1","status":"up"})");
  put(etcd_prefix_ + "test/membership/rows/garbage", "[1,2,3]");
  put(etcd_prefix_ + "test/membership/stranger", "hello");
  // Nothing changed for the members, and a new node still joins.
  start("c");
  (*this)["c"].proc->write_line("join -");
  for (auto name : {"a", "b", "c"})
    EXPECT_EQ((*this)[name].wait_members(
                "members a:up:reachable b:up:reachable c:up:reachable"),
              "members a:up:reachable b:up:reachable c:up:reachable")
      << name;
}

// -- load and scale -----------------------------------------------------------

namespace {

// Resident memory of process `pid` in KiB (VmRSS), or 0.
long rss_kib(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stol(line.substr(6));
  return 0;
}

} // namespace

TEST_F(cluster_load_test, thirty_two_nodes_converge) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "32 instrumented processes on 2 cores starve each other's "
                  "heartbeats; the plain build checks convergence";
#endif
  constexpr int count = 32;
  node_options opts;
  opts.direct = true; // 32 x 31 connections need no proxy
  if (auto p = std::getenv("RELAY_TEST_PAUSE_MS"))
    opts.acceptable_pause_ms = std::atoi(p);
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i)
    names.push_back("s" + std::to_string(i));
  for (auto& name : names)
    start(name, opts);
  auto seed = (*this)[names.front()].address;
  auto t0 = steady::now();
  for (auto& name : names)
    (*this)[name].proc->write_line("join " + seed);
  auto deadline = t0 + 60s;
  for (auto& observer : names)
    for (auto& member : names)
      ASSERT_TRUE((*this)[observer].wait_for(
        "event up " + member + " " + (*this)[member].address, deadline))
        << observer << " never saw " << member << " up";
  auto converged = std::chrono::duration_cast<std::chrono::milliseconds>(
    steady::now() - t0);
  for (auto& observer : names)
    for (auto& member : names)
      if (member != observer) {
        ASSERT_TRUE((*this)[observer].wait_for("node-up " + member, deadline))
          << observer << " never connected to " << member;
      }
  auto meshed = std::chrono::duration_cast<std::chrono::milliseconds>(
    steady::now() - t0);
  // A suspicion is reported on every member (gossip): count the members
  // that were suspected, not the events.
  auto suspected = [&] {
    std::set<std::string> subjects;
    for (auto& name : names)
      for (auto& line : (*this)[name].seen)
        if (line.rfind("event unreachable ", 0) == 0)
          subjects.insert(line.substr(18, line.find(' ', 18) - 18));
    return subjects.size();
  };
  auto suspicions = suspected();
  // Steady state: 10 s of the formed mesh, counting suspicions.
  for (auto& name : names)
    (*this)[name].forget();
  (*this)[names[0]].wait_for("event unreachable", steady::now() + 10s, true);
  for (auto& name : names)
    (*this)[name].wait_for("(drain)", steady::now() + 20ms);
  auto steady_suspicions = suspected();
  // Memory: the same node program alone (no peers) against a member of the
  // 32-node mesh; the difference over 31 connections is per connection.
  node_options lone = opts;
  auto& alone = start("alone", lone);
  long alone_kib = rss_kib(alone.proc->pid());
  long sum = 0, most = 0;
  for (auto& name : names) {
    auto kib = rss_kib((*this)[name].proc->pid());
    sum += kib;
    most = std::max(most, kib);
  }
  auto mean = sum / count;
  std::cout << "[ figures  ] " << count << " nodes: every member saw every "
            << "other up after " << converged.count() << " ms, full mesh after "
            << meshed.count() << " ms; RSS per node mean " << mean
            << " KiB (max " << most << "), a lone node " << alone_kib
            << " KiB, so about " << (mean - alone_kib) / (count - 1)
            << " KiB per member connection; members suspected (by any "
            << "member): " << suspicions << " while forming (32 processes "
            << "starting on " << std::thread::hardware_concurrency()
            << " cores), " << steady_suspicions << " in the 10 s after\n";
  auto view = (*this)[names[17]].members();
  size_t up = 0;
  for (size_t pos = view.find(":up:"); pos != std::string::npos;
       pos = view.find(":up:", pos + 1))
    ++up;
  EXPECT_EQ(up, static_cast<size_t>(count)) << view;
}

// -- detection times ------------------------------------------------------------

namespace {

std::string summary(std::vector<long> xs) {
  std::sort(xs.begin(), xs.end());
  if (xs.empty())
    return "none";
  return "median " + std::to_string(xs[xs.size() / 2]) + " ms, max "
         + std::to_string(xs.back()) + " ms over "
         + std::to_string(xs.size());
}

int rounds() {
  // 5 in the routine run; RELAY_CLUSTER_ROUNDS=20 for the figures.
  auto env = std::getenv("RELAY_CLUSTER_ROUNDS");
  return env != nullptr ? std::max(1, std::atoi(env)) : 5;
}

} // namespace

TEST_F(cluster_load_test, detection_times_of_kills_and_partitions) {
  form({"a", "b", "c", "d"});
  std::vector<long> kills, partitions;
  auto& d = (*this)["d"];
  for (int i = 0; i < rounds(); ++i) {
    // kill -9: the sockets close, every member notices.
    for (auto name : {"a", "b", "c"})
      (*this)[name].sync();
    auto t0 = steady::now();
    d.proc->signal(SIGKILL);
    auto k = all_see({"a", "b", "c"}, "unreachable", "d", t0, 2s);
    ASSERT_TRUE(k);
    kills.push_back(k->count());
    d.proc->stop(0, 5s);
    // The same node comes back as a new incarnation.
    start("d");
    d.proc->write_line("join " + (*this)["a"].address);
    ASSERT_TRUE(all_see({"a", "b", "c"}, "up", "d", t0, 10s));
    for (auto name : {"a", "b", "c"})
      ASSERT_TRUE((*this)[name].wait_for("node-up d", t0 + 10s));
    // A silent partition: only the detectors can tell.
    for (auto name : {"a", "b", "c"})
      (*this)[name].sync();
    auto t1 = steady::now();
    proxy_.partition({"d"}, {"a", "b", "c"});
    auto p = all_see({"a", "b", "c"}, "unreachable", "d", t1, 2s);
    ASSERT_TRUE(p);
    partitions.push_back(p->count());
    proxy_.heal();
    ASSERT_TRUE(all_see({"a", "b", "c"}, "reachable", "d", t1, 10s));
  }
  std::cout << "[ figures  ] detection on every member: kill -9 "
            << summary(kills) << "; silent partition (phi) "
            << summary(partitions) << "\n";
}
