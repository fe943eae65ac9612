// One node of the cluster sample (and of tests/integration/cluster_test):
// a Relay node with the cluster module, a worker in the process group
// "workers", driven by commands on stdin and reporting on stdout, one line
// each, so that a script or a test drives real processes and synchronises
// on what they print.
//
// Output:
//   listening <address>           the real cluster address (first line)
//   event <kind> <name> <address> every member event (joining, up, ...)
//   node-up <name>                every connection to another node
//   members <name>:<status>:<reachable|unreachable> ...
//   registered <name> | whereis <name> <node|none> | conflict <name>
//   joined <group> | group <group> <nodes...> | pick <group> <node>
//   work-progress <done> <total>  | work-done <json>
//   error <text>                  a command failed
// With --backend etcd --etcd URL the node joins through etcd at start
// ("join" is then accepted and changes nothing).
// Commands:
//   join <seed>...  wait-up  leave  members  quit
//   register <name>  whereis <name>  stop <name>
//   join-group <group>  group <group>
//   pick <group> random|round_robin|consistent_hash <key>
//   start-work <jobs> [<ms>]  hand <jobs> jobs of <ms> each to the group
//                       "workers", one request each (in turn over the
//                       members, 16 in flight); a job whose worker fails
//                       or is lost is handed to another; prints work-done
//                       when all are.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <cereal/types/string.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "relay/cluster.hpp"
#include "relay/node.hpp"

namespace cluster_sample {

/// A unit of work and its result.
struct job {
  uint64_t id = 0;
  /// How long the job takes (the worker answers after this long).
  uint32_t work_ms = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, work_ms);
  }
};

struct job_done {
  uint64_t id = 0;
  std::string worker; // the node that did it

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, worker);
  }
};

} // namespace cluster_sample

RELAY_MESSAGE_TYPE(cluster_sample::job, "cluster_sample.job")
RELAY_MESSAGE_TYPE(cluster_sample::job_done, "cluster_sample.job_done")

namespace {

using namespace cluster_sample;

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

caf::behavior printer(caf::event_based_actor*) {
  return {
    [](const relay::member_event& ev) {
      say(std::string{"event "} + relay::to_string(ev.kind) + " "
          + ev.member.name + " " + ev.member.address);
    },
    [](const relay::node_up_msg& up) { say("node-up " + up.name); },
    [](const relay::node_down_msg&) {},
  };
}

using finish_atom = caf::atom_constant<caf::atom("finish")>;

// Holds names, joins groups, does jobs; answers "who" with its node name.
caf::behavior worker(caf::event_based_actor* self, std::string node_name) {
  // Jobs in progress: a job "works" for work_ms without blocking a thread.
  auto busy = std::make_shared<
    std::map<uint64_t, caf::typed_response_promise<job_done>>>();
  return {
    [=](const std::string&) { return node_name; },
    [=](const job& j) -> caf::result<job_done> {
      if (j.work_ms == 0)
        return job_done{j.id, node_name};
      auto rp = self->make_response_promise<job_done>();
      (*busy)[j.id] = rp;
      self->delayed_send(self, std::chrono::milliseconds{j.work_ms},
                         finish_atom::value, j.id);
      return rp;
    },
    [=](finish_atom, uint64_t id) {
      auto i = busy->find(id);
      if (i == busy->end())
        return;
      i->second.deliver(job_done{id, node_name});
      busy->erase(i);
    },
    [=](const relay::global_name_conflict& x) {
      say("conflict " + x.name);
      self->quit();
    },
  };
}

// The node name of `x` (asked of x), or "none".
std::string node_of(caf::actor_system& sys, const caf::actor& x) {
  if (!x)
    return "none";
  caf::scoped_actor self{sys};
  std::string result = "unanswered";
  self->request(x, std::chrono::seconds{2}, std::string{"who"})
    .receive([&](std::string& name) { result = name; },
             [](caf::error&) {});
  return result;
}

// Hands out `total` jobs over the group "workers" and prints the outcome.
// Runs on a thread of its own (detached): pick() blocks briefly.
struct work_state {
  uint64_t total = 0;
  uint32_t work_ms = 0;
  uint64_t next = 0;
  std::vector<uint64_t> retry;
  std::set<uint64_t> done;
  uint64_t duplicates = 0;
  uint64_t reassigned = 0;
  size_t in_flight = 0;
  std::map<std::string, uint64_t> per_worker;
  std::chrono::steady_clock::time_point start;
};

constexpr size_t window = 16;

void hand_out(caf::event_based_actor* self, relay::cluster_module* cluster,
              std::shared_ptr<work_state> st) {
  while (st->in_flight < window
         && (!st->retry.empty() || st->next < st->total)) {
    auto target = cluster->pick("workers", relay::pick_policy::round_robin);
    if (!target) {
      // Nobody in the group right now: look again shortly.
      self->delayed_send(self, std::chrono::milliseconds{50},
                         caf::atom("again"));
      return;
    }
    uint64_t id;
    if (!st->retry.empty()) {
      id = st->retry.back();
      st->retry.pop_back();
    } else {
      id = st->next++;
    }
    ++st->in_flight;
    self->request(target, std::chrono::seconds{3}, job{id, st->work_ms})
      .then(
        [=](job_done& d) {
          --st->in_flight;
          if (!st->done.insert(d.id).second)
            ++st->duplicates;
          ++st->per_worker[d.worker];
          if (st->done.size() % (st->total / 10 + 1) == 0)
            say("work-progress " + std::to_string(st->done.size()) + " "
                + std::to_string(st->total));
          if (st->done.size() == st->total) {
            auto secs = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - st->start)
                          .count();
            std::string per = "{";
            for (auto& [w, n] : st->per_worker)
              per += (per.size() > 1 ? ", \"" : "\"") + w
                     + "\": " + std::to_string(n);
            per += "}";
            say("work-done {\"jobs\": " + std::to_string(st->total)
                + ", \"completed\": " + std::to_string(st->done.size())
                + ", \"lost\": " + std::to_string(st->total - st->done.size())
                + ", \"duplicates\": " + std::to_string(st->duplicates)
                + ", \"reassigned\": " + std::to_string(st->reassigned)
                + ", \"seconds\": " + std::to_string(secs)
                + ", \"per_worker\": " + per + "}");
            self->quit();
            return;
          }
          hand_out(self, cluster, st);
        },
        [=](caf::error&) {
          // The worker failed or its node is gone: someone else does it.
          --st->in_flight;
          ++st->reassigned;
          st->retry.push_back(id);
          hand_out(self, cluster, st);
        });
  }
}

caf::behavior work_coordinator(caf::event_based_actor* self,
                               relay::cluster_module* cluster,
                               uint64_t total, uint32_t work_ms) {
  auto st = std::make_shared<work_state>();
  st->total = total;
  st->work_ms = work_ms;
  st->start = std::chrono::steady_clock::now();
  hand_out(self, cluster, st);
  return {
    [=](caf::atom_value) { hand_out(self, cluster, st); },
  };
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> words;
  for (size_t pos = 0; pos < line.size();) {
    auto end = line.find(' ', pos);
    if (end == std::string::npos)
      end = line.size();
    if (end > pos)
      words.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  return words;
}

} // namespace

int run(int argc, char** argv) {
  CLI::App app{"A node of the Relay cluster sample; commands on stdin."};
  std::string name, cluster = "sample", advertise, source;
  std::string listen = "tcp://127.0.0.1:0";
  int down_after_ms = 10000;
  int pause_ms = -1;
  int heartbeat_ms = -1;
  std::string backend = "embedded", etcd_prefix;
  std::vector<std::string> etcd_endpoints;
  int lease_ttl_s = -1;
  app.add_option("--name", name, "node name")->required();
  app.add_option("--cluster", cluster, "cluster name");
  app.add_option("--listen", listen, "cluster address to listen on");
  app.add_option("--advertise", advertise,
                 "address other members dial (if not --listen's)");
  app.add_option("--source", source,
                 "source address of outgoing tcp (relay.tcp.source-address)");
  app.add_option("--down-after-ms", down_after_ms,
                 "unreachable this long: declared down");
  app.add_option("--acceptable-pause-ms", pause_ms,
                 "relay.cluster.acceptable-heartbeat-pause (500)");
  app.add_option("--heartbeat-interval-ms", heartbeat_ms,
                 "relay.cluster.heartbeat-interval (200)");
  app.add_option("--backend", backend, "embedded or etcd")
    ->check(CLI::IsMember({"embedded", "etcd"}));
  app.add_option("--etcd", etcd_endpoints,
                 "etcd client URLs (relay.cluster.etcd.endpoints)");
  app.add_option("--etcd-prefix", etcd_prefix,
                 "etcd key prefix (relay.cluster.etcd.prefix)");
  app.add_option("--lease-ttl-s", lease_ttl_s,
                 "relay.cluster.etcd.lease-ttl in seconds (5)");
  CLI11_PARSE(app, argc, argv);
  relay::node_config cfg;
  cfg.node_name = name;
  cfg.add_message_type<job>();
  cfg.add_message_type<job_done>();
  auto& cluster_mod = cfg.add_module<relay::cluster_module>();
  cfg.set_option("relay.cluster.name", cluster);
  cfg.set_option("relay.cluster.listen", listen);
  if (!advertise.empty())
    cfg.set_option("relay.cluster.advertise", advertise);
  if (!source.empty())
    cfg.set_option("relay.tcp.source-address", source);
  cfg.set_option("relay.cluster.down-after",
                 caf::timespan{std::chrono::milliseconds{down_after_ms}});
  auto ms = [](int x) { return caf::timespan{std::chrono::milliseconds{x}}; };
  if (pause_ms >= 0)
    cfg.set_option("relay.cluster.acceptable-heartbeat-pause", ms(pause_ms));
  if (heartbeat_ms > 0)
    cfg.set_option("relay.cluster.heartbeat-interval", ms(heartbeat_ms));
  cfg.set_option("relay.cluster.backend", backend);
  if (!etcd_endpoints.empty())
    cfg.set_option("relay.cluster.etcd.endpoints", etcd_endpoints);
  if (!etcd_prefix.empty())
    cfg.set_option("relay.cluster.etcd.prefix", etcd_prefix);
  if (lease_ttl_s > 0)
    cfg.set_option("relay.cluster.etcd.lease-ttl",
                   caf::timespan{std::chrono::seconds{lease_ttl_s}});
  relay::node n{cfg};
  say("listening " + cluster_mod.listen_address());
  auto out = n.system().spawn(printer);
  cluster_mod.monitor_cluster(out);
  n.monitor_nodes(out);
  std::map<std::string, caf::actor> holders;
  std::string line;
  while (std::getline(std::cin, line)) {
    auto words = split(line);
    if (words.empty())
      continue;
    auto& cmd = words[0];
    auto arg = words.size() > 1 ? words[1] : std::string{};
    if (cmd == "join") {
      if (auto err = cluster_mod.join({words.begin() + 1, words.end()}))
        say("error " + relay::describe(err));
    } else if (cmd == "wait-up") {
      if (auto err = cluster_mod.wait_up(std::chrono::seconds{20}))
        say("error " + relay::describe(err));
      else
        say("up");
    } else if (cmd == "leave") {
      cluster_mod.leave();
      say("left");
    } else if (cmd == "members") {
      std::string text = "members";
      for (auto& m : cluster_mod.members())
        text += " " + m.name + ":" + relay::to_string(m.status) + ":"
                + (m.reachable ? "reachable" : "unreachable");
      say(text);
    } else if (cmd == "register" && words.size() == 2) {
      auto holder = n.system().spawn(worker, name);
      holders[arg] = holder;
      if (auto err = cluster_mod.register_name(arg, holder))
        say("error " + relay::describe(err));
      else
        say("registered " + arg);
    } else if (cmd == "whereis" && words.size() == 2) {
      say("whereis " + arg + " "
          + node_of(n.system(), cluster_mod.whereis_name(arg)));
    } else if (cmd == "stop" && words.size() == 2) {
      caf::anon_send_exit(holders[arg], caf::exit_reason::user_shutdown);
      say("stopped " + arg);
    } else if (cmd == "join-group" && words.size() == 2) {
      auto member = n.system().spawn(worker, name);
      holders["group:" + arg] = member;
      if (auto err = cluster_mod.join_group(arg, member))
        say("error " + relay::describe(err));
      else
        say("joined " + arg);
    } else if (cmd == "group" && words.size() == 2) {
      std::vector<std::string> nodes;
      for (auto& m : cluster_mod.group_members(arg))
        nodes.push_back(node_of(n.system(), m));
      std::sort(nodes.begin(), nodes.end());
      std::string text = "group " + arg;
      for (auto& x : nodes)
        text += " " + x;
      say(text);
    } else if (cmd == "pick" && words.size() == 4) {
      auto policy = words[2] == "random" ? relay::pick_policy::random
                    : words[2] == "round_robin"
                      ? relay::pick_policy::round_robin
                      : relay::pick_policy::consistent_hash;
      say("pick " + arg + " "
          + node_of(n.system(), cluster_mod.pick(arg, policy, words[3])));
    } else if (cmd == "start-work" && words.size() >= 2) {
      uint32_t work_ms = words.size() > 2 ? std::stoul(words[2]) : 0;
      n.system().spawn<caf::detached>(work_coordinator, &cluster_mod,
                                      std::stoull(arg), work_ms);
    } else if (cmd == "quit") {
      break;
    } else {
      say("error unknown command: " + line);
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const relay::config_error& ex) {
    // A configuration the node refuses (no secret, a bad option): say why
    // on both streams (stdout is what scripts and tests read) and fail.
    say(std::string{"error "} + ex.what());
    std::fprintf(stderr, "cluster_node: %s\n", ex.what());
    return 2;
  }
}
