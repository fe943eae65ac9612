// relay_bench: Relay across two processes, request/response round trips and
// one-way streaming measured at the receiving actor.
//
//   relay_bench serve URI                       serve until SIGINT/SIGTERM
//   relay_bench rtt URI --size B --count N      JSON: p50_us, p99_us
//   relay_bench throughput URI --size B --count N
//                                               JSON: msgs_per_s, mb_per_s
//   relay_bench scale URI --connections C --size B --count N --rtt-count R
//                                               JSON: C connections at once:
//                                               aggregate msgs_per_s, and
//                                               p50_us/p99_us of their round
//                                               trips
//   relay_bench memory URI --count N            JSON: the server's memory per
//                                               idle connection, ours per
//                                               remote-actor proxy
//
// Any --relay.* option is passed to the node. Prints one JSON object per
// line; scripts/bench adds placement and compares systems.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "bench_common.hpp"
#include "relay/node.hpp"

namespace bench {

struct ping {
  uint64_t seq = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, payload);
  }
};

struct item {
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(payload);
  }
};

/// Ends a stream; the receiver answers with what it counted.
struct done {
  template <class Archive>
  void serialize(Archive&) {
  }
};

/// Asks the server for its resident memory, or (with spawn > 0) to spawn
/// that many idle actors and send their handles.
struct probe {
  uint64_t spawn = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(spawn);
  }
};

struct probe_reply {
  int64_t rss_kib = 0;
  std::vector<caf::actor> actors;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(rss_kib, actors);
  }
};

struct stats {
  uint64_t count = 0;
  int64_t first_ns = 0; // receiver's steady clock at the first item
  int64_t last_ns = 0;  // ... and at the last
  template <class Archive>
  void serialize(Archive& ar) {
    ar(count, first_ns, last_ns);
  }
};

} // namespace bench

RELAY_MESSAGE_TYPE(bench::ping, "bench.ping")
RELAY_MESSAGE_TYPE(bench::item, "bench.item")
RELAY_MESSAGE_TYPE(bench::done, "bench.done")
RELAY_MESSAGE_TYPE(bench::stats, "bench.stats")
RELAY_MESSAGE_TYPE(bench::probe, "bench.probe")
RELAY_MESSAGE_TYPE(bench::probe_reply, "bench.probe_reply")

namespace {

using bench::now_ns;
using clock_type = std::chrono::steady_clock;

int64_t rss_kib() {
  long pages = 0;
  long resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

caf::behavior sink(caf::stateful_actor<bench::stats>* self) {
  return {
    [](bench::ping& x) { return x; },
    [=](const bench::item&) {
      auto t = now_ns();
      if (self->state.count++ == 0)
        self->state.first_ns = t;
      self->state.last_ns = t;
    },
    [=](const bench::done&) {
      auto result = self->state;
      self->state = bench::stats{};
      return result;
    },
    [=](const bench::probe& p) {
      bench::probe_reply reply;
      for (uint64_t i = 0; i < p.spawn; ++i)
        reply.actors.push_back(self->spawn(
          [](caf::event_based_actor* me) -> caf::behavior {
            return {[=](const bench::done&) { me->quit(); }};
          }));
      reply.rss_kib = rss_kib();
      return reply;
    },
  };
}

// "relay", or "relay_io_thread" with relay.deliver-on-io-thread.
const char* system_name = "relay";

std::string transport_of(const std::string& uri) {
  return uri.substr(0, uri.find(':'));
}

int serve(relay::node& node, const std::string& uri) {
  auto actor = node.system().spawn(sink);
  if (auto err = node.publish(actor, "sink")) {
    std::cerr << "relay_bench: " << relay::describe(err) << "\n";
    return 1;
  }
  auto real = node.listen(uri);
  if (!real) {
    std::cerr << "relay_bench: " << relay::describe(real.error()) << "\n";
    return 1;
  }
  std::cout << "listening on " << *real << std::endl;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int sig = 0;
  sigwait(&signals, &sig);
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  std::fprintf(stderr, "{\"role\": \"server\", \"peak_rss_kib\": %ld}\n",
               peak_rss_kib());
  return 0;
}

int rtt(relay::node& node, const std::string& uri, size_t size, size_t count) {
  auto remote = node.lookup(uri, "sink");
  if (!remote) {
    std::cerr << "relay_bench: " << relay::describe(remote.error()) << "\n";
    return 1;
  }
  caf::scoped_actor self{node.system()};
  std::string payload(size, 'x');
  std::vector<double> rtts;
  rtts.reserve(count);
  auto warmup = bench::warmup_of(count);
  for (size_t i = 0; i < count + warmup; ++i) {
    auto start = clock_type::now();
    bool ok = false;
    self->request(*remote, std::chrono::seconds{10}, bench::ping{i, payload})
      .receive([&](const bench::ping& x) { ok = x.seq == i; },
               [&](caf::error& err) {
                 std::cerr << "relay_bench: " << relay::describe(err) << "\n";
               });
    if (!ok)
      return 1;
    rtts.push_back(std::chrono::duration<double, std::micro>(
                       clock_type::now() - start)
                       .count());
  }
  bench::print_rtt(system_name, transport_of(uri), size, std::move(rtts),
                   ", \"client_peak_rss_kib\": " + std::to_string(peak_rss_kib()));
  return 0;
}

// Sends `count` items to `remote` with a round trip every `window` items
// and one at the end, so that all of them were processed when it returns.
// Relay bounds what is in flight (relay.max-queued-bytes) by refusing
// more, not by blocking the sender: the round trips pace the stream.
bool stream_items(caf::scoped_actor& self, const caf::actor& remote,
                  const bench::item& msg, size_t count) {
  constexpr size_t window = 4096;
  for (size_t sent = 0; sent < count;) {
    auto n = std::min(window, count - sent);
    for (size_t i = 0; i < n; ++i)
      self->send(remote, msg);
    sent += n;
    bool ok = false;
    self->request(remote, std::chrono::seconds{60}, bench::ping{sent, ""})
      .receive([&](const bench::ping&) { ok = true; },
               [&](caf::error& err) {
                 std::cerr << "relay_bench: " << relay::describe(err) << "\n";
               });
    if (!ok)
      return false;
  }
  return true;
}

int throughput(relay::node& node, const std::string& uri, size_t size,
               size_t count) {
  auto remote = node.lookup(uri, "sink");
  if (!remote) {
    std::cerr << "relay_bench: " << relay::describe(remote.error()) << "\n";
    return 1;
  }
  caf::scoped_actor self{node.system()};
  bench::item msg{std::string(size, 'x')};
  bench::stats result;
  auto sync = [&](bool reset) {
    bool ok = false;
    self->request(*remote, std::chrono::seconds{60}, bench::done{})
      .receive(
        [&](const bench::stats& s) {
          ok = true;
          if (!reset)
            result = s;
        },
        [&](caf::error& err) {
          std::cerr << "relay_bench: " << relay::describe(err) << "\n";
        });
    return ok;
  };
  if (!sync(true) || !stream_items(self, *remote, msg, count))
    return 1;
  if (!sync(false))
    return 1;
  if (result.count != count) {
    std::cerr << "relay_bench: the receiver counted " << result.count
              << " of " << count << " messages\n";
    return 1;
  }
  bench::print_throughput(system_name, transport_of(uri), size, count,
                          result.last_ns - result.first_ns,
                          ", \"client_peak_rss_kib\": "
                            + std::to_string(peak_rss_kib()));
  return 0;
}

// The server's memory per idle connection (N extra nodes connect to it) and
// ours per proxy (the server sends N actor handles).
int memory(relay::node& node, relay::node_config& cfg, const std::string& uri,
           size_t count) {
  auto remote = node.lookup(uri, "sink");
  if (!remote) {
    std::cerr << "relay_bench: " << relay::describe(remote.error()) << "\n";
    return 1;
  }
  caf::scoped_actor self{node.system()};
  auto ask = [&](uint64_t spawn) {
    bench::probe_reply result;
    self->request(*remote, std::chrono::seconds{60}, bench::probe{spawn})
      .receive([&](bench::probe_reply& r) { result = std::move(r); },
               [&](caf::error& err) {
                 std::cerr << "relay_bench: " << relay::describe(err) << "\n";
               });
    return result;
  };
  auto server_before = ask(0).rss_kib;
  {
    // Each node is a peer of its own: one connection each.
    std::vector<std::unique_ptr<relay::node>> peers;
    for (size_t i = 0; i < count; ++i) {
      peers.push_back(std::make_unique<relay::node>(cfg));
      if (!peers.back()->lookup(uri, "sink"))
        return 1;
    }
    auto server_after = ask(0).rss_kib;
    std::printf("{\"system\": \"%s\", \"transport\": \"%s\", \"case\": "
                "\"memory\", \"what\": \"idle_connection\", \"count\": %zu, "
                "\"server_kib_each\": %.1f}\n",
                system_name, transport_of(uri).c_str(), count,
                static_cast<double>(server_after - server_before)
                  / static_cast<double>(count));
  }
  auto ours_before = rss_kib();
  auto reply = ask(count);
  auto ours_after = rss_kib();
  std::printf("{\"system\": \"%s\", \"transport\": \"%s\", \"case\": "
              "\"memory\", \"what\": \"proxy\", \"count\": %zu, "
              "\"client_kib_each\": %.2f}\n",
              system_name, transport_of(uri).c_str(), reply.actors.size(),
              static_cast<double>(ours_after - ours_before)
                / static_cast<double>(std::max<size_t>(reply.actors.size(), 1)));
  for (auto& a : reply.actors)
    self->send(a, bench::done{});
  return 0;
}

// Many connections to one node at once: `connections` nodes of this
// process (one connection each) stream `count` items in all to the
// server's sink concurrently; then each makes `rtt_count / connections`
// round trips, all at once. Prints the aggregate rate, measured at the
// receiver, and the round trips' p50 and p99 over all connections.
int scale(relay::node_config& cfg, const std::string& uri, size_t size,
          size_t count, size_t connections, size_t rtt_count) {
  // The client nodes generate load on one CPU: one scheduler thread each,
  // or 256 nodes' worker pools starve each other's heartbeats (the server
  // then rightly closes their connections as silent).
  cfg.set("scheduler.max-threads", 1);
  std::vector<std::unique_ptr<relay::node>> nodes;
  std::vector<caf::actor> sinks;
  for (size_t i = 0; i < connections; ++i) {
    nodes.push_back(std::make_unique<relay::node>(cfg));
    auto remote = nodes.back()->lookup(uri, "sink");
    if (!remote) {
      std::cerr << "relay_bench: " << relay::describe(remote.error()) << "\n";
      return 1;
    }
    sinks.push_back(*remote);
  }
  caf::scoped_actor main_self{nodes.front()->system()};
  auto sync = [&](bench::stats* result) {
    bool ok = false;
    main_self->request(sinks.front(), std::chrono::seconds{60}, bench::done{})
      .receive(
        [&](const bench::stats& s) {
          ok = true;
          if (result != nullptr)
            *result = s;
        },
        [&](caf::error& err) {
          std::cerr << "relay_bench: " << relay::describe(err) << "\n";
        });
    return ok;
  };
  if (!sync(nullptr))
    return 1;
  auto each = std::max<size_t>(count / connections, 1);
  auto rtts_each = std::max<size_t>(rtt_count / connections, 20);
  std::vector<std::vector<double>> rtts(connections);
  std::atomic<bool> failed{false};
  auto run_all = [&](auto&& body) {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < connections; ++i)
      threads.emplace_back([&, i] {
        caf::scoped_actor self{nodes[i]->system()};
        if (!body(self, i))
          failed = true;
      });
    for (auto& t : threads)
      t.join();
  };
  bench::item msg{std::string(size, 'x')};
  run_all([&](caf::scoped_actor& self, size_t i) {
    return stream_items(self, sinks[i], msg, each);
  });
  bench::stats result;
  if (failed || !sync(&result))
    return 1;
  if (result.count != each * connections) {
    std::cerr << "relay_bench: the receiver counted " << result.count
              << " of " << each * connections << " messages\n";
    return 1;
  }
  std::string payload(size, 'x');
  run_all([&](caf::scoped_actor& self, size_t i) {
    rtts[i].reserve(rtts_each);
    for (size_t n = 0; n < rtts_each; ++n) {
      auto start = clock_type::now();
      bool ok = false;
      self->request(sinks[i], std::chrono::seconds{60}, bench::ping{n, payload})
        .receive([&](const bench::ping& x) { ok = x.seq == n; },
                 [&](caf::error&) {});
      if (!ok)
        return false;
      rtts[i].push_back(std::chrono::duration<double, std::micro>(
                          clock_type::now() - start)
                          .count());
    }
    return true;
  });
  if (failed)
    return 1;
  std::vector<double> all;
  for (auto& v : rtts) // each connection's first round trips are warm-up
    all.insert(all.end(), v.begin() + static_cast<long>(v.size() / 10),
               v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all[std::min(all.size() - 1,
                        static_cast<size_t>(p * (all.size() - 1) + 0.5))];
  };
  auto elapsed = std::max<int64_t>(result.last_ns - result.first_ns, 1);
  std::printf("{\"system\": \"%s\", \"transport\": \"%s\", \"case\": "
              "\"scale\", \"size\": %zu, \"connections\": %zu, "
              "\"count\": %zu, \"msgs_per_s\": %.0f, \"p50_us\": %.2f, "
              "\"p99_us\": %.2f}\n",
              system_name, transport_of(uri).c_str(), size, connections,
              static_cast<size_t>(result.count),
              static_cast<double>(result.count - 1) * 1e9
                / static_cast<double>(elapsed),
              pct(0.5), pct(0.99));
  std::fflush(stdout);
  return 0;
}

int usage() {
  std::cerr << "usage: relay_bench serve URI\n"
               "       relay_bench rtt|throughput URI [--size B] [--count N]\n"
               "       relay_bench memory URI [--count N]\n"
               "       relay_bench scale URI [--connections C] [--size B] "
               "[--count N] [--rtt-count R]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3)
    return usage();
  std::string mode = argv[1];
  std::string uri = argv[2];
  size_t size = 64;
  size_t count = 10000;
  size_t connections = 16;
  size_t rtt_count = 20000;
  std::vector<char*> relay_args{argv[0]};
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--size" && i + 1 < argc)
      size = std::stoul(argv[++i]);
    else if (arg == "--count" && i + 1 < argc)
      count = std::stoul(argv[++i]);
    else if (arg == "--connections" && i + 1 < argc)
      connections = std::max<size_t>(std::stoul(argv[++i]), 1);
    else if (arg == "--rtt-count" && i + 1 < argc)
      rtt_count = std::stoul(argv[++i]);
    else if (arg.rfind("--", 0) == 0) // --relay.*, CAF options
      relay_args.push_back(argv[i]);
    else
      return usage();
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  relay::node_config cfg;
  cfg.add_message_type<bench::ping>()
    .add_message_type<bench::item>()
    .add_message_type<bench::done>()
    .add_message_type<bench::stats>()
    .add_message_type<bench::probe>()
    .add_message_type<bench::probe_reply>();
  if (auto err = cfg.parse(static_cast<int>(relay_args.size()),
                           relay_args.data())) {
    std::cerr << "relay_bench: bad option: " << cfg.render(err) << "\n";
    return 2;
  }
  if (cfg.deliver_on_io_thread)
    system_name = "relay_io_thread";
  if (mode == "scale") // its own nodes, one per connection
    return scale(cfg, uri, size, count, connections, rtt_count);
  relay::node node{cfg};
  if (mode == "serve")
    return serve(node, uri);
  if (mode == "rtt")
    return rtt(node, uri, size, count);
  if (mode == "throughput")
    return throughput(node, uri, size, count);
  if (mode == "memory")
    return memory(node, cfg, uri, count);
  return usage();
}
