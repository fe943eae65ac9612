// caf_bench: the CAF side of the comparison.
//
//   caf_bench local rtt|throughput [--size B] [--count N] [--relay]
//       two actors in one process: plain CAF (its default configuration),
//       or with --relay inside a relay::node (Relay's configuration); CAF
//       options (--work-stealing.moderate-poll-attempts=0) make it
//       "caf_tuned";
//   caf_bench remote serve
//       caf::io: publishes an actor on a free loopback port, prints it;
//   caf_bench remote rtt|throughput PORT [--size B] [--count N]
//       CAF's own remoting (BASP over TCP) to that actor.
//
// Prints one JSON object per line, like relay_bench.

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "bench_common.hpp"
#include "relay/node.hpp"

namespace {

using bench::now_ns;
using clock_type = std::chrono::steady_clock;
using done_atom = caf::atom_constant<caf::atom("done")>;
using item_atom = caf::atom_constant<caf::atom("item")>;

struct sink_state {
  uint64_t count = 0;
  int64_t first_ns = 0;
  int64_t last_ns = 0;
};

// Echoes (seq, payload); counts items; reports (count, first, last).
caf::behavior sink(caf::stateful_actor<sink_state>* self) {
  return {
    [](uint64_t seq, std::string& payload) {
      return caf::make_message(seq, std::move(payload));
    },
    [=](item_atom, const std::string&) {
      auto t = now_ns();
      if (self->state.count++ == 0)
        self->state.first_ns = t;
      self->state.last_ns = t;
    },
    [=](done_atom) {
      auto s = self->state;
      self->state = sink_state{};
      return caf::make_message(s.count, s.first_ns, s.last_ns);
    },
  };
}

int rtt(caf::actor_system& sys, const caf::actor& target,
        const std::string& system, const std::string& transport, size_t size,
        size_t count) {
  caf::scoped_actor self{sys};
  std::string payload(size, 'x');
  std::vector<double> rtts;
  auto warmup = bench::warmup_of(count);
  for (size_t i = 0; i < count + warmup; ++i) {
    auto t0 = clock_type::now();
    bool ok = false;
    self->request(target, std::chrono::seconds{10}, uint64_t{i}, payload)
      .receive([&](uint64_t seq, const std::string&) { ok = seq == i; },
               [&](caf::error& err) { std::cerr << to_string(err) << "\n"; });
    if (!ok)
      return 1;
    rtts.push_back(
        std::chrono::duration<double, std::micro>(clock_type::now() - t0)
          .count());
  }
  bench::print_rtt(system.c_str(), transport, size, std::move(rtts));
  return 0;
}

int throughput(caf::actor_system& sys, const caf::actor& target,
               const std::string& system, const std::string& transport,
               size_t size, size_t count) {
  caf::scoped_actor self{sys};
  std::string payload(size, 'x');
  constexpr size_t window = 4096; // bounds what is in flight, as relay_bench
  uint64_t got = 0;
  int64_t first = 0;
  int64_t last = 0;
  auto sync = [&] {
    bool ok = false;
    self->request(target, std::chrono::seconds{60}, done_atom::value)
      .receive(
        [&](uint64_t n, int64_t f, int64_t l) {
          ok = true;
          got = n;
          first = f;
          last = l;
        },
        [&](caf::error& err) { std::cerr << to_string(err) << "\n"; });
    return ok;
  };
  if (!sync())
    return 1;
  for (size_t sent = 0; sent < count;) {
    auto n = std::min(window, count - sent);
    for (size_t i = 0; i < n; ++i)
      self->send(target, item_atom::value, payload);
    sent += n;
    if (sent < count) {
      bool ok = false;
      self->request(target, std::chrono::seconds{60}, uint64_t{sent},
                    std::string{})
        .receive([&](uint64_t, const std::string&) { ok = true; },
                 [&](caf::error& err) { std::cerr << to_string(err) << "\n"; });
      if (!ok)
        return 1;
    }
  }
  if (!sync() || got != count) {
    std::cerr << "caf_bench: the receiver counted " << got << " of " << count
              << "\n";
    return 1;
  }
  bench::print_throughput(system.c_str(), transport, size, count,
                          last - first);
  return 0;
}

int usage() {
  std::cerr << "usage: caf_bench local rtt|throughput [--size B] [--count N] "
               "[--relay]\n"
               "       caf_bench remote serve\n"
               "       caf_bench remote rtt|throughput PORT [--size B] "
               "[--count N]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3)
    return usage();
  std::string where = argv[1];
  std::string mode = argv[2];
  size_t size = 64;
  size_t count = 10000;
  bool in_relay = false;
  uint16_t port = 0;
  std::vector<char*> caf_args{argv[0]}; // --key=value options for CAF
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--size" || arg == "--count") && i + 1 < argc)
      (arg == "--size" ? size : count) = std::stoul(argv[++i]);
    else if (arg == "--relay")
      in_relay = true;
    else if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos)
      caf_args.push_back(argv[i]);
    else if (where == "remote" && port == 0)
      port = static_cast<uint16_t>(std::stoul(arg));
    else
      return usage();
  }
  auto run = [&](caf::actor_system& sys, const caf::actor& target,
                 const std::string& system, const std::string& transport) {
    return mode == "rtt"
             ? rtt(sys, target, system, transport, size, count)
             : throughput(sys, target, system, transport, size, count);
  };
  if (where == "local") {
    if (in_relay) {
      relay::node_config cfg;
      relay::node node{cfg};
      auto target = node.system().spawn(sink);
      auto rc = run(node.system(), target, "relay", "local");
      caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
      return rc;
    }
    caf::actor_system_config cfg;
    if (auto err = cfg.parse(static_cast<int>(caf_args.size()),
                             caf_args.data()))
      return usage();
    caf::actor_system sys{cfg};
    auto target = sys.spawn(sink);
    auto rc = run(sys, target, caf_args.size() > 1 ? "caf_tuned" : "caf",
                  "local");
    caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
    return rc;
  }
  if (where != "remote")
    return usage();
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  if (mode == "serve") {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    auto target = sys.spawn(sink);
    auto real = sys.middleman().publish(target, 0, "127.0.0.1");
    if (!real) {
      std::cerr << "caf_bench: " << sys.render(real.error()) << "\n";
      return 1;
    }
    std::cout << "listening on " << *real << std::endl;
    int sig = 0;
    sigwait(&signals, &sig);
    caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
    return 0;
  }
  auto target = sys.middleman().remote_actor("127.0.0.1", port);
  if (!target) {
    std::cerr << "caf_bench: " << sys.render(target.error()) << "\n";
    return 1;
  }
  return run(sys, *target, "caf_remote", "tcp");
}
