// The cluster demo (scripts/cluster-demo): five cluster_node processes on
// loopback tcp, every connection through a fault-injection proxy this
// program controls. It forms the cluster through one seed, spreads work
// over a process group, kills a node with SIGKILL (detected, its work moves
// on), restarts it (a new incarnation rejoins), cuts another node off and
// heals it while both sides register one global name, and prints the
// cluster view at each step. The last line is one JSON object.
//
// With --backend etcd it starts an etcd-server of its own on a loopback
// port (in a temporary directory, removed at the end) and the nodes use
// the etcd backend: the same story, except that the name registered on
// both sides of the partition is refused on the second side (etcd names
// are linearizable), so there is no conflict to resolve.
//
// Every wait is on a line a node prints, and bounded; the nodes are
// stopped (then killed) at the end, also on failure.

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "etcd_server.hpp"
#include "fault_proxy.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

struct demo_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

long ms_since(steady::time_point t) {
  return static_cast<long>(
    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t)
      .count());
}

void step(const std::string& text) {
  std::cout << "\n== " << text << "\n" << std::flush;
}

void note(const std::string& text) {
  std::cout << "   " << text << "\n" << std::flush;
}

struct node_proc {
  std::string name;
  std::string ip;
  std::string address;
  std::unique_ptr<relay::test::child> proc;
  std::vector<std::string> lines;
  size_t mark = 0; // waits look at lines from here on

  // The first line from `mark` on that starts with `prefix`.
  std::string wait_for(const std::string& prefix,
                       std::chrono::milliseconds bound) {
    auto deadline = steady::now() + bound;
    for (size_t i = mark;; ++i) {
      while (i >= lines.size()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - steady::now());
        auto got = left.count() > 0 ? proc->read_line(left) : std::nullopt;
        if (!got)
          throw demo_failure(name + " did not print '" + prefix + "' within "
                             + std::to_string(bound.count()) + " ms");
        lines.push_back(*got);
      }
      if (lines[i].rfind(prefix, 0) == 0)
        return lines[i];
    }
  }

  std::string ask(const std::string& command, const std::string& prefix) {
    return ask_any(command, {prefix});
  }

  // The first line after `command` that starts with one of `prefixes`.
  std::string ask_any(const std::string& command,
                      const std::vector<std::string>& prefixes) {
    mark = lines.size();
    proc->write_line(command);
    auto deadline = steady::now() + 10s;
    for (size_t i = mark;; ++i) {
      while (i >= lines.size()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - steady::now());
        auto got = left.count() > 0 ? proc->read_line(left) : std::nullopt;
        if (!got)
          throw demo_failure(name + " did not answer '" + command
                             + "' within 10 s");
        lines.push_back(*got);
      }
      for (auto& p : prefixes)
        if (lines[i].rfind(p, 0) == 0)
          return lines[i];
    }
  }

  // Reads everything the node printed so far (a command's answer comes
  // after it), then waits only for lines printed from now on.
  void sync() {
    ask("members", "members ");
    mark = lines.size();
  }
};

class demo {
public:
  explicit demo(bool use_etcd) {
    if (use_etcd) {
      etcd_ = std::make_unique<relay::test::etcd_server>();
      note("etcd-server on " + etcd_->url());
    }
    for (int i = 1; i <= 5; ++i) {
      auto name = "n" + std::to_string(i);
      auto& n = nodes_[name];
      n.name = name;
      n.ip = "127.0.0." + std::to_string(20 + i);
      n.address = "tcp://127.0.0.1:"
                  + std::to_string(proxy_.add_node(name, n.ip));
      order_.push_back(name);
    }
  }

  ~demo() {
    for (auto& [name, n] : nodes_)
      if (n.proc) {
        n.proc->write_line("quit");
        n.proc->stop(0, 3s); // then the destructor kills what is left
      }
  }

  void start(const std::string& name) {
    auto& n = nodes_.at(name);
    n.lines.clear();
    n.mark = 0;
    std::vector<std::string> args{RELAY_CLUSTER_NODE, "--name", name,
                                  "--cluster", "demo", "--advertise",
                                  n.address, "--source", n.ip,
                                  "--down-after-ms", "10000"};
    if (etcd_)
      args.insert(args.end(), {"--backend", "etcd", "--etcd", etcd_->url(),
                               "--lease-ttl-s", "2"});
    n.proc = std::make_unique<relay::test::child>(args, false, true);
    auto line = n.wait_for("listening ", 10s);
    proxy_.set_target(name, static_cast<uint16_t>(
                              std::stoi(line.substr(line.rfind(':') + 1))));
  }

  node_proc& operator[](const std::string& name) {
    return nodes_.at(name);
  }

  // Waits until each of `observers` printed `event <what> <subject>`
  // (from its mark on); returns the longest time from `since`.
  long all_see(const std::vector<std::string>& observers,
               const std::string& what, const std::string& subject,
               steady::time_point since, std::chrono::milliseconds bound) {
    long slowest = 0;
    for (auto& o : observers) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        since + bound - steady::now());
      nodes_.at(o).wait_for("event " + what + " " + subject + " ",
                            std::max(left, 1ms));
      slowest = std::max(slowest, ms_since(since));
    }
    return slowest;
  }

  void show_members(const std::string& from) {
    auto words = split(nodes_.at(from).ask("members", "members ").substr(8));
    std::sort(words.begin(), words.end());
    std::string text;
    for (auto& w : words)
      text += (text.empty() ? "" : "  ") + w;
    note("members as " + from + " sees them: " + text);
  }

  // Asks `command` of `name` until the answer is `expected` (a poll of
  // state that converges by gossip), at most `bound`.
  std::string ask_until(const std::string& name, const std::string& command,
                        const std::string& prefix, const std::string& expected,
                        std::chrono::milliseconds bound) {
    auto deadline = steady::now() + bound;
    std::string last;
    while (steady::now() < deadline) {
      last = nodes_.at(name).ask(command, prefix);
      if (last == expected)
        return last;
      std::this_thread::sleep_for(50ms);
    }
    throw demo_failure(name + " answered '" + last + "' to '" + command
                       + "', not '" + expected + "'");
  }

  static std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> words;
    size_t pos = 0;
    while (pos < text.size()) {
      auto end = text.find(' ', pos);
      if (end == std::string::npos)
        end = text.size();
      if (end > pos)
        words.push_back(text.substr(pos, end - pos));
      pos = end + 1;
    }
    return words;
  }

  std::vector<std::string> others(const std::string& x) const {
    std::vector<std::string> result;
    for (auto& n : order_)
      if (n != x)
        result.push_back(n);
    return result;
  }

  std::string run() {
    auto& n1 = nodes_.at("n1");
    step(etcd_ ? "1. Five nodes start; each joins through etcd"
               : "1. Five nodes start; each joins through one seed (n1)");
    auto t0 = steady::now();
    for (auto& name : order_)
      start(name);
    for (auto& name : order_)
      nodes_.at(name).proc->write_line("join " + n1.address);
    for (auto& name : order_)
      all_see(order_, "up", name, t0, 20s);
    formed_ms_ = ms_since(t0);
    note("every node saw all five up after " + std::to_string(formed_ms_)
         + (etcd_ ? " ms (they read each other's keys in etcd, then "
                    "connected in a full mesh)"
                  : " ms (they learned of each other from the seed, then "
                    "connected in a full mesh)"));
    show_members("n3");

    step("2. Every node joins the process group 'workers'; n1 registers "
         "the global name 'coordinator' and hands out 40000 jobs of 1 ms");
    for (auto& name : order_)
      nodes_.at(name).ask("join-group workers", "joined");
    n1.ask("register coordinator", "registered");
    note("'coordinator' as n5 resolves it: "
         + nodes_.at("n5").ask("whereis coordinator", "whereis").substr(8));
    note("the group as n2 sees it: "
         + ask_until("n2", "group workers", "group",
                     "group workers n1 n2 n3 n4 n5", 10s)
             .substr(6));
    n1.mark = n1.lines.size();
    n1.proc->write_line("start-work 40000 1");
    note(n1.wait_for("work-progress", 20s));

    step("3. kill -9 n5 while it works");
    auto& n5 = nodes_.at("n5");
    for (auto& name : order_)
      nodes_.at(name).sync();
    auto t1 = steady::now();
    n5.proc->signal(SIGKILL);
    n5.proc->stop(0, 5s);
    auto detection = all_see(others("n5"), "unreachable", "n5", t1, 5s);
    note("n1-n4 all saw n5 unreachable after " + std::to_string(detection)
         + " ms (its connections closed; its jobs in flight failed and went "
           "to other workers)");
    show_members("n2");

    step("4. n5 restarts at the same address: a new incarnation joins");
    auto t2 = steady::now();
    start("n5");
    n5.proc->write_line("join " + n1.address);
    all_see(others("n5"), "down", "n5", t2, 10s);
    all_see(order_, "up", "n5", t2, 20s);
    for (auto& name : others("n5"))
      nodes_.at(name).wait_for("node-up n5", 10s); // the mesh is whole again
    n5.ask("join-group workers", "joined");
    note("the old n5 was declared down at once, the new one is up on every "
         "node after " + std::to_string(ms_since(t2)) + " ms");
    show_members("n1");

    step("5. The proxy cuts n4 off (a silent partition: packets stop); "
         "both sides register 'singleton'");
    for (auto& name : order_)
      nodes_.at(name).sync();
    auto t3 = steady::now();
    proxy_.partition({"n4"}, {"n1", "n2", "n3", "n5"});
    auto partition_detection = all_see({"n1", "n2", "n3", "n5"},
                                       "unreachable", "n4", t3, 5s);
    note("the phi-accrual detectors of n1, n2, n3, n5 suspected n4 after "
         + std::to_string(partition_detection) + " ms");
    auto& n4 = nodes_.at("n4");
    for (auto& other : {"n1", "n2", "n3", "n5"})
      all_see({"n4"}, "unreachable", other, t3, 5s);
    note("and n4 suspected each of them");
    show_members("n1");
    show_members("n4");
    note("n4 registers: " + n4.ask("register singleton", "registered"));
    auto second = nodes_.at("n2").ask_any("register singleton",
                                          {"registered", "error"});
    if (etcd_ && second.rfind("error relay.already_registered", 0) != 0)
      throw demo_failure("etcd let n2 take a name n4 holds: " + second);
    note("n2 registers: " + second);

    step("6. The partition heals before relay.cluster.down-after (10 s)");
    auto t4 = steady::now();
    proxy_.heal();
    all_see({"n1", "n2", "n3", "n5"}, "reachable", "n4", t4, 10s);
    note("n4 reachable again everywhere after " + std::to_string(ms_since(t4))
         + " ms");
    // The two owners meet: one keeps the name on every node.
    std::set<std::string> owners;
    auto deadline = steady::now() + 15s;
    while (steady::now() < deadline) {
      owners.clear();
      for (auto& name : order_)
        owners.insert(nodes_.at(name).ask("whereis singleton", "whereis"));
      if (owners.size() == 1)
        break;
      std::this_thread::sleep_for(100ms);
    }
    note("'singleton' after the heal: " + *owners.begin() + " on all "
         + std::to_string(order_.size()) + " nodes ("
         + std::to_string(owners.size()) + " distinct answer(s))");
    if (etcd_) {
      note("(etcd refused the second registration, so there was never a "
           "second owner to resolve)");
    } else {
      auto winner = owners.begin()->substr(owners.begin()->rfind(' ') + 1);
      auto loser = winner == "n4" ? "n2" : "n4";
      nodes_.at(loser).wait_for("conflict singleton", 10s);
      note("the holder on " + std::string{loser}
           + " was told it lost the name (global_name_conflict)");
    }
    show_members("n4");

    step("7. The work finishes");
    auto done = n1.wait_for("work-done ", 60s).substr(10);
    note(done);
    auto lost_at = done.find("\"lost\": ");
    auto lost = done.substr(lost_at + 8, done.find(',', lost_at) - lost_at - 8);
    return "{\"backend\": \"" + std::string{etcd_ ? "etcd" : "embedded"}
           + "\", \"nodes\": " + std::to_string(order_.size())
           + ", \"formed_ms\": " + std::to_string(formed_ms_)
           + ", \"detection_ms\": [" + std::to_string(detection) + "]"
           + ", \"partition_detection_ms\": "
           + std::to_string(partition_detection)
           + ", \"rejoined\": true, \"name_owners_after_heal\": "
           + std::to_string(owners.size()) + ", \"lost_work\": " + lost
           + ", \"work\": " + done + "}";
  }

private:
  std::unique_ptr<relay::test::etcd_server> etcd_; // stopped last
  relay::test::fault_proxy proxy_;
  std::map<std::string, node_proc> nodes_;
  std::vector<std::string> order_;
  long formed_ms_ = 0;
};

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  bool use_etcd = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--backend" && i + 1 < argc
        && (std::string{argv[i + 1]} == "etcd"
            || std::string{argv[i + 1]} == "embedded")) {
      use_etcd = std::string{argv[++i]} == "etcd";
    } else {
      std::cerr << "usage: cluster_demo [--backend embedded|etcd]\n";
      return 2;
    }
  }
  if (std::getenv("RELAY_COOKIE") == nullptr) {
    // A fresh secret for this run; the nodes inherit it.
    std::random_device rd;
    std::string secret;
    for (int i = 0; i < 32; ++i)
      secret += "0123456789abcdef"[rd() % 16];
    setenv("RELAY_COOKIE", secret.c_str(), 1);
  }
  try {
    demo d{use_etcd};
    auto json = d.run();
    std::cout << "\n" << json << "\n" << std::flush;
    return 0;
  } catch (std::exception& ex) {
    std::cerr << "cluster demo failed: " << ex.what() << "\n";
    return 1;
  }
}
