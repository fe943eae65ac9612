// relayctl: looks into a running Relay node. It is itself a node, hidden
// (node_config::hidden), that connects to the node's URI like any peer
// (uid rules, the shared secret, trust levels apply unchanged) and asks
// that node's introspection service (node::introspection_name). Output is
// a table, or the node's JSON document with --json. See
// docs/operations.md.
//
// Exit codes: 0 done (monitor: stopped by SIGINT, SIGTERM or --count);
// 1 the node answered with an error (unknown name, a call that failed,
// ...); 2 bad usage; 3 the node could not be reached or did not answer in
// time.

#include <caf/all.hpp>

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "relay/detail/json_text.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"
#include "table.hpp"

namespace {

using json = nlohmann::json;

constexpr int exit_answered_error = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;

struct options {
  std::string uri;
  bool json_output = false;
  int timeout_ms = 5000;
  std::string cookie_file;
  /// --relay.* options for relayctl's own node (e.g. smaller mq queues).
  std::vector<std::string> relay_args;
};

/// relayctl's own hidden node and its connection to the node at opts.uri.
class client {
public:
  /// Starts the node (quiet: its info lines are not relayctl's output).
  /// Throws config_error for an unusable cookie file.
  explicit client(const options& opts) : timeout_(opts.timeout_ms) {
    relay::set_log_sink([](relay::log_level level, const std::string& text) {
      if (level <= relay::log_level::warning)
        std::cerr << "relayctl: " << text << '\n';
    });
    cfg_.node_name = "relayctl";
    cfg_.hidden = true;
    cfg_.resume = false;
    cfg_.cookie_file = opts.cookie_file;
    cfg_.connect_timeout = timeout_;
    cfg_.lookup_timeout = timeout_;
    cfg_.handshake_timeout = timeout_;
    std::vector<char*> args{const_cast<char*>("relayctl")};
    for (auto& arg : opts.relay_args)
      args.push_back(const_cast<char*>(arg.c_str()));
    if (auto err = cfg_.parse(static_cast<int>(args.size()), args.data()))
      throw relay::config_error("bad option: " + cfg_.render(err));
    node_.emplace(cfg_);
  }

  /// Connects and finds the introspection service; prints why not and
  /// returns exit_usage for a malformed URI, exit_unreachable for any other
  /// failure, else 0.
  int connect(const std::string& uri) {
    auto service = node_->lookup(uri, relay::node::introspection_name);
    if (!service) {
      auto& err = service.error();
      std::cerr << "relayctl: '" << uri << "': " << relay::describe(err)
                << '\n';
      return relay::is(err, relay::errc::invalid_uri)
                 || relay::is(err, relay::errc::unknown_scheme)
               ? exit_usage
               : exit_unreachable;
    }
    service_ = std::move(*service);
    return 0;
  }

  /// Asks for `topic`; prints errors itself and returns the exit code
  /// with the document (null on failure).
  std::pair<int, json> ask(const std::string& topic, const std::string& args) {
    std::pair<int, json> result{exit_unreachable, nullptr};
    caf::scoped_actor self{node_->system()};
    auto start = std::chrono::steady_clock::now();
    self->request(service_, timeout_, relay::introspect_atom::value, topic, args)
      .receive(
        [&](std::string& text) {
          try {
            result = {0, relay::detail::parse_json(text)};
          } catch (const std::exception& ex) {
            std::cerr << "relayctl: the node's answer is not JSON: "
                      << ex.what() << '\n';
            result.first = exit_answered_error;
          }
        },
        [&](caf::error& err) {
          std::cerr << "relayctl: " << relay::describe(err) << '\n';
          // A timeout before our own is the node's answer (a call's actor
          // did not answer it), not silence from the node.
          auto ours = err == caf::sec::request_timeout
                      && std::chrono::steady_clock::now() - start >= timeout_;
          result.first = ours || relay::is(err, relay::errc::node_unreachable)
                           ? exit_unreachable
                           : exit_answered_error;
        });
    return result;
  }

private:
  std::chrono::milliseconds timeout_;
  relay::node_config cfg_;
  std::optional<relay::node> node_;
  caf::actor service_;
};

std::string bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double x = static_cast<double>(n);
  size_t u = 0;
  while (x >= 1024 && u + 1 < std::size(units)) {
    x /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", x, units[u]);
  return buf;
}

/// Lists what the topic's sources answered with an error (a source that
/// did not answer); the rest of the output stays valid.
void warn_failed_sources(json& doc) {
  for (auto& src : doc.value("sources", json::array()))
    if (src.contains("error"))
      std::cerr << "relayctl: actor " << src.value("actor", 0)
                << " did not answer: " << src["error"].get<std::string>()
                << '\n';
}

/// The last heartbeat round trip to a peer, e.g. "0.084 ms"; "-" before
/// the first (or for a node that does not answer probes).
std::string round_trip(const json& peer) {
  auto rtt = peer.value("rtt", json::object());
  if (!rtt.contains("last_ms"))
    return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f ms", rtt["last_ms"].get<double>());
  return buf;
}

void print_nodes(json& doc) {
  std::cout << "node " << doc["name"].get<std::string>() << "  id "
            << doc["id"].get<std::string>() << "  pid " << doc["pid"] << '\n';
  for (auto& uri : doc["listen"])
    std::cout << "listening on " << uri.get<std::string>() << '\n';
  if (auto m = doc.value("metrics", std::string{}); !m.empty())
    std::cout << "metrics on http://" << m << "/metrics\n";
  relay::table t{{"PEER", "TRANSPORT", "URI", "SINCE", "FRAMES IN",
                  "FRAMES OUT", "BYTES IN", "BYTES OUT", "QUEUED", "RTT"}};
  for (auto& p : doc["peers"]) {
    auto name = p["name"].get<std::string>();
    if (p.value("hidden", false))
      name += " (hidden)";
    t.add({name, p["transport"].get<std::string>(),
           p["uri"].get<std::string>(), p["since"].get<std::string>(),
           std::to_string(p["frames_in"].get<uint64_t>()),
           std::to_string(p["frames_out"].get<uint64_t>()),
           bytes(p["bytes_in"].get<uint64_t>()),
           bytes(p["bytes_out"].get<uint64_t>()),
           bytes(p["queued_bytes"].get<uint64_t>()), round_trip(p)});
  }
  t.print(std::cout);
  for (auto& src : doc["sources"]) {
    if (!src.contains("members"))
      continue;
    std::cout << "\ncluster members\n";
    relay::table m{{"MEMBER", "ADDRESS", "STATUS", "REACHABLE", "ID"}};
    for (auto& x : src["members"])
      m.add({x["name"].get<std::string>(), x["address"].get<std::string>(),
             x["status"].get<std::string>(),
             x["reachable"].get<bool>() ? "yes" : "no",
             x["id"].get<std::string>()});
    m.print(std::cout);
  }
}

void print_names(json& doc) {
  relay::table t{{"NAME", "ACTOR", "INTERFACE"}};
  for (auto& e : doc["published"]) {
    auto ifs = e["interface"];
    std::string first = ifs.empty() ? "(dynamically typed)"
                                     : ifs[0].get<std::string>();
    t.add({e["name"].get<std::string>(),
           std::to_string(e["actor"].get<uint64_t>()), first});
    for (size_t i = 1; i < ifs.size(); ++i)
      t.add({"", "", ifs[i].get<std::string>()});
  }
  t.print(std::cout);
  for (auto& src : doc["sources"]) {
    if (!src.contains("names"))
      continue;
    std::cout << "\ncluster-wide names\n";
    relay::table c{{"NAME", "ACTOR", "NODE"}};
    for (auto& e : src["names"])
      c.add({e["name"].get<std::string>(),
             std::to_string(e["actor"].get<uint64_t>()),
             e["node"].get<std::string>()});
    c.print(std::cout);
  }
}

void print_stats(json& doc) {
  relay::table t{{"COUNTER", "VALUE"}};
  for (auto& [key, value] : doc.items())
    if (key != "sources")
      t.add({key, relay::detail::json_text(value)});
  t.print(std::cout);
}

/// Prints each supervisor as a tree: a child whose actor is another
/// supervisor that answered nests below it; a process child shows its pid.
void print_tree(json& doc) {
  std::map<uint64_t, json> supervisors;
  std::map<uint64_t, json> processes;
  std::set<uint64_t> nested;
  for (auto& src : doc["sources"]) {
    auto kind = src.value("kind", "");
    auto id = src.value("actor", uint64_t{0});
    if (kind == "supervisor")
      supervisors[id] = src;
    else if (kind == "process")
      processes[id] = src;
  }
  // Actor ids are per node: only a child on the same node can be one of
  // these supervisors.
  auto local_child = [&](json& c) -> uint64_t {
    auto id = c.value("actor", uint64_t{0});
    return c.contains("node") || supervisors.count(id) == 0 ? 0 : id;
  };
  for (auto& [id, sup] : supervisors)
    for (auto& c : sup["children"])
      if (auto child = local_child(c); child != 0)
        nested.insert(child);
  std::set<uint64_t> printed; // a cycle in a bad answer ends here
  std::function<void(json&, const std::string&)> print_level;
  print_level = [&](json& sup, const std::string& indent) {
    auto& children = sup["children"];
    for (size_t i = 0; i < children.size(); ++i) {
      auto& c = children[i];
      bool last = i + 1 == children.size();
      auto actor = c.value("actor", uint64_t{0});
      std::cout << indent << (last ? "└─ " : "├─ ")
                << (c["id"].get<std::string>().empty()
                      ? std::string{"(dynamic)"}
                      : c["id"].get<std::string>())
                << "  " << c["state"].get<std::string>() << "  "
                << c["restart"].get<std::string>();
      if (actor != 0)
        std::cout << "  actor " << actor;
      if (auto p = processes.find(actor); p != processes.end())
        std::cout << "  pid " << p->second["pid"];
      if (c.contains("node"))
        std::cout << "  on " << c["node"].get<std::string>();
      std::cout << "  restarts " << c["restarts"] << '\n';
      if (auto child = local_child(c);
          child != 0 && printed.insert(child).second)
        print_level(supervisors[child], indent + (last ? "   " : "│  "));
    }
  };
  if (supervisors.empty())
    std::cout << "(no supervisor registered on this node)\n";
  for (auto& [id, sup] : supervisors) {
    if (nested.count(id) != 0 || !printed.insert(id).second)
      continue;
    std::cout << sup["name"].get<std::string>() << "  "
              << sup["strategy"].get<std::string>() << "  intensity "
              << sup["intensity"] << " per " << sup["period_ms"]
              << " ms  restarts " << sup["restarts"] << "  actor " << id
              << '\n';
    print_level(sup, "");
  }
}

int print_call(json& doc, bool as_json) {
  auto& reply = doc["reply"];
  if (as_json || reply.size() != 1) {
    std::cout << relay::detail::json_text_indented(reply) << '\n';
    return 0;
  }
  auto& element = reply[0];
  if (element.contains("value"))
    std::cout << relay::detail::json_text(element["value"]) << '\n';
  else
    std::cout << element["text"].get<std::string>() << '\n';
  return 0;
}

struct monitor_options {
  std::string name;
  std::string type;
  uint64_t count = 0;
};

/// Polls the node's trace every 100 ms and prints each message as a line
/// (a JSON object per line with --json) until `m.count` messages, SIGINT
/// or SIGTERM (blocked by main, taken here).
int monitor(client& c, const options& opts, const monitor_options& m,
            const sigset_t& stop_signals) {
  json args = json::object();
  if (!m.name.empty())
    args["name"] = m.name;
  if (!m.type.empty())
    args["type"] = m.type;
  auto [code, doc] = c.ask("monitor", relay::detail::json_text(args));
  if (code != 0)
    return code;
  // On stderr with --json: stdout is then JSON lines only.
  (opts.json_output ? std::cerr : std::cout)
    << "monitoring " << opts.uri << " (SIGINT stops)" << std::endl;
  uint64_t shown = 0;
  for (;;) {
    args["since"] = doc["next"];
    std::tie(code, doc) = c.ask("monitor", relay::detail::json_text(args));
    if (code != 0)
      return code;
    if (auto lost = doc["lost"].get<uint64_t>(); lost > 0)
      std::cerr << "relayctl: " << lost
                << " messages not shown: the node's trace overflowed\n";
    for (auto& x : doc["messages"]) {
      if (opts.json_output)
        std::cout << relay::detail::json_text(x) << '\n';
      else
        std::cout << x["time"].get<std::string>() << "  "
                  << x["direction"].get<std::string>() << "  actor "
                  << x["sender"] << " -> actor " << x["receiver"] << "  "
                  << x["type"].get<std::string>() << "  " << x["bytes"]
                  << " B  " << x["peer"].get<std::string>() << '\n';
      if (m.count != 0 && ++shown == m.count) {
        std::cout.flush();
        return 0;
      }
    }
    std::cout.flush();
    timespec pause{0, 100'000'000};
    if (sigtimedwait(&stop_signals, nullptr, &pause) > 0)
      return 0;
  }
}

/// Prints the answer to `topic`; returns the exit code. Throws
/// json::exception if the answer lacks what it should have.
int print(const std::string& topic, json& doc, bool as_json) {
  if (topic == "call")
    return print_call(doc, as_json);
  if (as_json) {
    std::cout << relay::detail::json_text_indented(doc) << '\n';
    return 0;
  }
  warn_failed_sources(doc);
  if (topic == "metrics")
    std::cout << doc["text"].get<std::string>();
  else if (topic == "node")
    print_nodes(doc);
  else if (topic == "names")
    print_names(doc);
  else if (topic == "tree")
    print_tree(doc);
  else
    print_stats(doc);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"relayctl: look into a running Relay node (docs/operations.md)"};
  app.require_subcommand(1);
  // Global options also after the command: relayctl metrics URI --json.
  app.fallthrough();
  options opts;
  app.add_flag("--json", opts.json_output, "print the node's JSON document");
  app.add_option("--timeout", opts.timeout_ms,
                 "bound on connecting and on each answer, in ms")
    ->check(CLI::Range(1, 600000))
    ->capture_default_str();
  app.add_option("--cookie-file", opts.cookie_file,
                 "secret for transports that authenticate (mode 0600); "
                 "default $RELAY_COOKIE");
  auto add = [&](const char* name, const char* help) {
    auto* cmd = app.add_subcommand(name, help);
    cmd->add_option("uri", opts.uri, "the node, e.g. uds:///run/app/a.sock")
      ->required();
    return cmd;
  };
  add("nodes", "the node and the nodes connected to it, with traffic");
  add("names", "published names and their typed interfaces");
  add("tree", "supervision trees: children, states, restarts, pids");
  add("stats", "the node's counters");
  add("metrics", "the node's metrics in the Prometheus text format (as its "
                 "relay.metrics.listen endpoint serves them)");
  std::string call_name, call_type, call_value;
  int call_timeout_ms = 5000;
  auto* call = add("call", "send a request built from JSON to a published "
                           "actor and print the reply as JSON");
  call->add_option("name", call_name, "published name")->required();
  call->add_option("type", call_type, "registered message type name")
    ->required();
  call->add_option("value", call_value, "the message as JSON")->required();
  call->add_option("--call-timeout", call_timeout_ms,
                   "how long the actor may take to answer, in ms")
    ->check(CLI::Range(1, 60000))
    ->capture_default_str();
  monitor_options mon;
  auto* mon_cmd = add("monitor", "a live stream of the messages entering and "
                                 "leaving the node (time, direction, sender, "
                                 "receiver, type, size)");
  mon_cmd->add_option("--name", mon.name,
                      "only messages to or from the actor published as this");
  mon_cmd->add_option("--type", mon.type, "only messages of this type");
  mon_cmd->add_option("--count", mon.count,
                      "stop after this many messages (0: at SIGINT)")
    ->check(CLI::NonNegativeNumber)
    ->capture_default_str();
  // --relay.KEY=VALUE options configure relayctl's own node, as for any
  // node (say --relay.mq.message-size=256 where the user's queue memory is
  // short): taken out before CLI11 sees the rest.
  std::vector<char*> cli_args;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::strncmp(argv[i], "--relay.", 8) == 0)
      opts.relay_args.emplace_back(argv[i]);
    else
      cli_args.push_back(argv[i]);
  }
  app.footer("Options --relay.KEY=VALUE configure relayctl's own node "
             "(docs/operations.md).");
  try {
    app.parse(static_cast<int>(cli_args.size()), cli_args.data());
  } catch (const CLI::ParseError& e) {
    auto code = app.exit(e);
    return code == 0 ? 0 : exit_usage;
  }
  auto* cmd = app.get_subcommands().front();
  std::string topic = cmd->get_name();
  std::string args;
  if (topic == "nodes") {
    topic = "node";
  } else if (topic == "call") {
    json value;
    try {
      value = relay::detail::parse_json(call_value);
    } catch (const std::exception& ex) {
      std::cerr << "relayctl: the value is not JSON: " << ex.what() << '\n';
      return exit_usage;
    }
    args = relay::detail::json_text(json{{"name", call_name},
                                         {"type", call_type},
                                         {"value", value},
                                         {"timeout_ms", call_timeout_ms}});
    // The answer may take as long as the call.
    opts.timeout_ms = std::max(opts.timeout_ms, call_timeout_ms + 1000);
  }
  // SIGINT and SIGTERM end a monitor cleanly: blocked in every thread
  // (before the node starts its own) and taken by sigtimedwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  if (topic == "monitor") {
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  }
  std::optional<client> c;
  try {
    c.emplace(opts);
  } catch (const std::exception& ex) {
    std::cerr << "relayctl: " << ex.what() << '\n';
    return exit_usage;
  }
  if (auto code = c->connect(opts.uri); code != 0)
    return code;
  try {
    if (topic == "monitor")
      return monitor(*c, opts, mon, stop_signals);
    auto [code, doc] = c->ask(topic, args);
    if (code != 0)
      return code;
    return print(topic, doc, opts.json_output);
  } catch (const std::exception& ex) {
    std::cerr << "relayctl: unexpected answer from the node: " << ex.what()
              << '\n';
    return exit_answered_error;
  }
}
