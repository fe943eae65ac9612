// ping_pong: request/response round trips between two processes.
//
//   ping_pong serve URI [--cookie-file F]   serve until SIGINT/SIGTERM
//   ping_pong ping URI [--count N] [--size BYTES] [--cookie-file F]
//
// --cookie-file F is the secret that authenticates tcp peers (mode 0600;
// same as --relay.cookie-file=F). Any --relay.* option is passed to the
// node configuration.

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "relay/json_codec.hpp"
#include "messages.hpp"
#include "relay/node.hpp"

using namespace ping_pong;
using clock_type = std::chrono::steady_clock;

namespace {

pong_actor::behavior_type pong_server() {
  return {
    [](ping& x) { return pong{x.seq, std::move(x.payload)}; },
  };
}

int usage() {
  std::cerr << "usage: ping_pong serve URI [--cookie-file F]\n"
               "       ping_pong ping URI [--count N] [--size BYTES] "
               "[--cookie-file F]\n";
  return 2;
}

int run_server(relay::node& node, const std::string& uri) {
  auto server = node.system().spawn(pong_server);
  if (auto err = node.publish(server, "pong")) {
    std::cerr << "cannot publish: " << relay::describe(err) << "\n";
    return 1;
  }
  auto real = node.listen(uri);
  if (!real) {
    std::cerr << "cannot listen on " << uri << ": "
              << relay::describe(real.error()) << "\n";
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
    return 1;
  }
  std::cout << "listening on " << *real << std::endl;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "ping_pong: got " << strsignal(sig) << ", shutting down\n";
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  return 0;
}

int run_pinger(relay::node& node, const std::string& uri, size_t count,
         size_t size) {
  auto server = node.lookup<pong_actor>(uri, "pong");
  if (!server) {
    std::cerr << "ping_pong: lookup of 'pong' at " << uri
              << " failed: " << relay::describe(server.error()) << "\n";
    return 1;
  }
  std::string payload(size, 'x');
  for (size_t i = 0; i < size; ++i)
    payload[i] = static_cast<char>('a' + i % 26);
  std::vector<double> rtts;
  rtts.reserve(count);
  size_t matched = 0;
  caf::scoped_actor self{node.system()};
  for (size_t i = 0; i < count; ++i) {
    auto start = clock_type::now();
    bool ok = false;
    self->request(*server, std::chrono::seconds{10}, ping{i, payload})
      .receive(
        [&](const pong& x) { ok = x.seq == i && x.payload == payload; },
        [&](caf::error& err) {
          std::cerr << "ping_pong: round trip " << i
                    << " failed: " << relay::describe(err) << "\n";
        });
    auto elapsed = clock_type::now() - start;
    if (!ok)
      break;
    ++matched;
    rtts.push_back(
      std::chrono::duration<double, std::micro>(elapsed).count());
  }
  std::sort(rtts.begin(), rtts.end());
  auto pct = [&](double p) {
    if (rtts.empty())
      return 0.0;
    auto idx = std::min(rtts.size() - 1,
                        static_cast<size_t>(p * (rtts.size() - 1) + 0.5));
    return rtts[idx];
  };
  printf("{\"count\": %zu, \"matched\": %zu, \"size\": %zu, \"uri\": \"%s\", "
         "\"p50_us\": %.2f, \"p99_us\": %.2f, \"min_us\": %.2f, "
         "\"max_us\": %.2f}\n",
         count, matched, size, uri.c_str(), pct(0.5), pct(0.99), pct(0.0),
         pct(1.0));
  fflush(stdout);
  return matched == count ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3)
    return usage();
  std::string mode = argv[1];
  std::string uri = argv[2];
  size_t count = 1000;
  size_t size = 64;
  std::vector<char*> relay_args{argv[0]};
  std::string cookie_file;
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (arg == "--count") {
      auto v = value();
      if (!v)
        return usage();
      count = std::stoul(v);
    } else if (arg == "--size") {
      auto v = value();
      if (!v)
        return usage();
      size = std::stoul(v);
    } else if (arg == "--cookie-file") {
      auto v = value();
      if (!v)
        return usage();
      cookie_file = v;
    } else if (arg.rfind("--relay.", 0) == 0) {
      relay_args.push_back(argv[i]);
    } else {
      return usage();
    }
  }
  // Signals are taken synchronously by serve(); block them before any
  // thread starts so every thread inherits the mask. A pinger keeps the
  // default: SIGINT and SIGTERM end it.
  if (mode == "serve") {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  }
  relay::node_config cfg;
  // JSON too, so that `relayctl call URI pong ping_pong.ping '{"seq": 1,
  // "payload": "hi"}'` can ask the server (docs/operations.md).
  cfg.add_message_type<ping>(relay::json_codec_for<ping>())
    .add_message_type<pong>(relay::json_codec_for<pong>());
  if (auto err = cfg.parse(static_cast<int>(relay_args.size()),
                           relay_args.data())) {
    std::cerr << "ping_pong: bad option: " << cfg.render(err) << "\n";
    return 2;
  }
  if (cfg.cli_helptext_printed)
    return 0;
  if (!cookie_file.empty())
    cfg.cookie_file = cookie_file;
  std::unique_ptr<relay::node> node_ptr;
  try {
    node_ptr = std::make_unique<relay::node>(cfg);
  } catch (relay::config_error& ex) {
    std::cerr << "ping_pong: " << ex.what() << "\n";
    return 2;
  }
  auto& node = *node_ptr;
  if (mode == "serve")
    return run_server(node, uri);
  if (mode == "ping")
    return run_pinger(node, uri, count, size);
  return usage();
}
