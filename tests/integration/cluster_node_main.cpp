// A cluster node for the cluster tests: prints what happens as lines and
// takes commands on stdin, so that a test drives real processes and
// synchronises on their output.
//
// Output: "listening <real address>", then "event <kind> <name> <address>"
// for every member event, "node-up <name>" for every connection to a node, "members <name>:<status>:<reachable|unreachable>
// ..." for the members command, "error <text>" for a failed command.
// Commands: "join <seed>...", "wait-up", "leave", "members", "quit";
// names: "register <name>" (a new local actor holds it; prints "registered
// <name>"), "whereis <name>" (prints "whereis <name> <holder's node name or
// none>"), "stop <name>" (the holder exits); groups: "join-group <group>"
// (a new local actor joins; prints "joined <group>"), "group <group>"
// (prints "group <group> <node names of the members, sorted>"), "pick
// <group> random|round_robin|consistent_hash <key>" (prints "pick <group>
// <node name>"). A holder that loses its name prints "conflict <name>".

#include <algorithm>
#include <cstdio>
#include <map>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "relay/cluster.hpp"
#include "relay/node.hpp"

namespace {

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

caf::behavior printer(caf::event_based_actor*) {
  return {
    [](const relay::node_up_msg& up) { say("node-up " + up.name); },
    [](const relay::node_down_msg&) {},
    [](const relay::member_event& ev) {
      say(std::string{"event "} + relay::to_string(ev.kind) + " "
          + ev.member.name + " " + ev.member.address);
    },
  };
}

// Answers "who" with its node's name; holds names and joins groups.
caf::behavior named(caf::event_based_actor* self, std::string node_name) {
  return {
    [=](const std::string&) { return node_name; },
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

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"cluster test node"};
  std::string name, cluster = "test", advertise, source;
  int down_after_ms = 10000;
  int pause_ms = -1;
  app.add_option("--name", name)->required();
  app.add_option("--cluster", cluster);
  app.add_option("--advertise", advertise);
  app.add_option("--source", source, "source address of outgoing tcp");
  app.add_option("--down-after-ms", down_after_ms);
  app.add_option("--acceptable-pause-ms", pause_ms);
  CLI11_PARSE(app, argc, argv);
  relay::node_config cfg;
  cfg.node_name = name;
  auto& cluster_mod = cfg.add_module<relay::cluster_module>();
  cfg.set_option("relay.cluster.name", cluster);
  if (!advertise.empty())
    cfg.set_option("relay.cluster.advertise", advertise);
  if (!source.empty())
    cfg.set_option("relay.tcp.source-address", source);
  auto ms = [](int x) { return caf::timespan{std::chrono::milliseconds{x}}; };
  cfg.set_option("relay.cluster.down-after", ms(down_after_ms));
  if (pause_ms >= 0)
    cfg.set_option("relay.cluster.acceptable-heartbeat-pause", ms(pause_ms));
  relay::node n{cfg};
  say("listening " + cluster_mod.listen_address());
  auto out = n.system().spawn(printer);
  cluster_mod.monitor_cluster(out);
  n.monitor_nodes(out);
  std::map<std::string, caf::actor> holders;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> words;
    for (size_t pos = 0; pos < line.size();) {
      auto end = line.find(' ', pos);
      if (end == std::string::npos)
        end = line.size();
      if (end > pos)
        words.push_back(line.substr(pos, end - pos));
      pos = end + 1;
    }
    if (words.empty())
      continue;
    if (words[0] == "join") {
      if (auto err = cluster_mod.join({words.begin() + 1, words.end()}))
        say("error " + relay::describe(err));
    } else if (words[0] == "wait-up") {
      if (auto err = cluster_mod.wait_up(std::chrono::seconds{20}))
        say("error " + relay::describe(err));
      else
        say("up");
    } else if (words[0] == "leave") {
      cluster_mod.leave();
      say("left");
    } else if (words[0] == "members") {
      std::string out = "members";
      for (auto& m : cluster_mod.members())
        out += " " + m.name + ":" + relay::to_string(m.status) + ":"
               + (m.reachable ? "reachable" : "unreachable");
      say(out);
    } else if (words[0] == "register" && words.size() == 2) {
      auto holder = n.system().spawn(named, name);
      holders[words[1]] = holder;
      if (auto err = cluster_mod.register_name(words[1], holder))
        say("error " + relay::describe(err));
      else
        say("registered " + words[1]);
    } else if (words[0] == "whereis" && words.size() == 2) {
      say("whereis " + words[1] + " "
          + node_of(n.system(), cluster_mod.whereis_name(words[1])));
    } else if (words[0] == "stop" && words.size() == 2) {
      caf::anon_send_exit(holders[words[1]], caf::exit_reason::user_shutdown);
      say("stopped " + words[1]);
    } else if (words[0] == "join-group" && words.size() == 2) {
      auto member = n.system().spawn(named, name);
      holders["group:" + words[1]] = member;
      if (auto err = cluster_mod.join_group(words[1], member))
        say("error " + relay::describe(err));
      else
        say("joined " + words[1]);
    } else if (words[0] == "group" && words.size() == 2) {
      std::vector<std::string> names;
      for (auto& m : cluster_mod.group_members(words[1]))
        names.push_back(node_of(n.system(), m));
      std::sort(names.begin(), names.end());
      std::string out = "group " + words[1];
      for (auto& x : names)
        out += " " + x;
      say(out);
    } else if (words[0] == "pick" && words.size() == 4) {
      auto policy = words[2] == "random"        ? relay::pick_policy::random
                    : words[2] == "round_robin" ? relay::pick_policy::round_robin
                                                : relay::pick_policy::consistent_hash;
      say("pick " + words[1] + " "
          + node_of(n.system(), cluster_mod.pick(words[1], policy, words[3])));
    } else if (words[0] == "quit") {
      break;
    }
  }
  return 0;
}
