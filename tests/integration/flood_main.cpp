// The two sides of the flow-control test (flow_control_test.cpp), as real
// processes:
//
//   flood sink URI [--work-us N]     listens on URI, publishes "sink", which
//                                    spends N us (busy) on each item; prints
//                                    "listening URI", serves until SIGTERM
//   flood send URI [--seconds S] [--payload BYTES] [--request-every K]
//                                    looks up "sink" at URI and sends items as
//                                    fast as it can for S seconds, every K-th
//                                    as a request; then asks the sink how many
//                                    it received and prints one line:
//     result sent=.. async=.. requests=.. acked=.. failed=.. other_errors=..
//            overload_drops=.. other_drops=.. received=.. sender_rss_kib=..
//            sink_rss_kib=.. sink_pauses=..
//
// Both read the secret from RELAY_COOKIE; any --relay.* option goes to the
// node. RSS figures are peaks (VmHWM).

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <cereal/types/string.hpp>

#include "relay/node.hpp"

namespace flood {

struct item {
  uint64_t seq = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, payload);
  }
};

/// The same as a request (answered with its seq).
struct probe {
  uint64_t seq = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, payload);
  }
};

/// Asks the sink for its counts; answered with a tally.
struct report {
  uint64_t unused = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(unused);
  }
};

struct tally {
  uint64_t received = 0;
  uint64_t rss_kib = 0;
  uint64_t pauses = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(received, rss_kib, pauses);
  }
};

} // namespace flood

RELAY_MESSAGE_TYPE(flood::item, "flood.item")
RELAY_MESSAGE_TYPE(flood::probe, "flood.probe")
RELAY_MESSAGE_TYPE(flood::report, "flood.report")
RELAY_MESSAGE_TYPE(flood::tally, "flood.tally")

namespace {

using namespace flood;
using steady = std::chrono::steady_clock;

uint64_t peak_rss_kib() {
  std::ifstream status{"/proc/self/status"};
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stoull(line.substr(6));
  return 0;
}

struct sink_state {
  uint64_t received = 0;
};

caf::behavior sink(caf::stateful_actor<sink_state>* self, relay::node* node,
                   std::chrono::microseconds work) {
  auto busy = [work] {
    auto until = steady::now() + work;
    while (steady::now() < until) {
      // slow receiver: the point of the test
    }
  };
  return {
    [=](const item&) {
      busy();
      ++self->state.received;
    },
    [=](const probe& x) {
      busy();
      ++self->state.received;
      return x.seq;
    },
    [=](const report&) {
      return tally{self->state.received, peak_rss_kib(),
                   node->stats().inbound_pauses};
    },
  };
}

struct sender_state {
  caf::actor sink;
  std::string payload;
  steady::time_point deadline;
  uint64_t request_every = 16;
  uint64_t sent = 0;
  uint64_t requests = 0;
  uint64_t acked = 0;
  uint64_t failed = 0; // errc::overloaded
  uint64_t other_errors = 0;
  bool flooding = true;
  bool asked = false;
};

using tick_atom = caf::atom_constant<caf::atom("tick")>;
using ask_atom = caf::atom_constant<caf::atom("ask")>;

caf::behavior sender(caf::stateful_actor<sender_state>* self,
                     relay::node* node, caf::actor sink, size_t payload,
                     std::chrono::seconds duration, uint64_t request_every) {
  auto& st = self->state;
  st.sink = std::move(sink);
  st.payload.assign(payload, 'p');
  st.deadline = steady::now() + duration;
  st.request_every = request_every;
  auto finish_if_done = [self] {
    auto& st = self->state;
    if (st.flooding || st.asked
        || st.acked + st.failed + st.other_errors != st.requests)
      return;
    st.asked = true;
    self->send(self, ask_atom::value);
  };
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      auto& st = self->state;
      if (steady::now() >= st.deadline) {
        st.flooding = false;
        finish_if_done();
        return;
      }
      for (int i = 0; i < 256; ++i) {
        auto seq = st.sent++;
        if (seq % st.request_every != 0) {
          self->send(st.sink, item{seq, st.payload});
          continue;
        }
        ++st.requests;
        self->request(st.sink, std::chrono::seconds{60}, probe{seq, st.payload})
          .then([=](uint64_t) {
                  ++self->state.acked;
                  finish_if_done();
                },
                [=](caf::error& err) {
                  if (err.category() == relay::error_category_atom
                      && err.code()
                           == static_cast<uint8_t>(relay::errc::overloaded))
                    ++self->state.failed;
                  else {
                    ++self->state.other_errors;
                    std::cerr << "flood: request failed: "
                              << relay::describe(err) << "\n";
                  }
                  finish_if_done();
                });
      }
      self->send(self, tick_atom::value);
    },
    [=](ask_atom) {
      // The report travels behind every item accepted before it, so its
      // answer counts them all. A full queue refuses it too: ask again.
      self->request(self->state.sink, std::chrono::seconds{60}, report{})
        .then(
          [=](const tally& t) {
            auto& st = self->state;
            auto stats = node->stats();
            std::printf(
              "result sent=%llu async=%llu requests=%llu acked=%llu "
              "failed=%llu other_errors=%llu overload_drops=%llu "
              "other_drops=%llu received=%llu sender_rss_kib=%llu "
              "sink_rss_kib=%llu sink_pauses=%llu\n",
              (unsigned long long) st.sent,
              (unsigned long long) (st.sent - st.requests),
              (unsigned long long) st.requests, (unsigned long long) st.acked,
              (unsigned long long) st.failed,
              (unsigned long long) st.other_errors,
              (unsigned long long) stats.overload_drops,
              (unsigned long long) (stats.dropped_messages
                                    - stats.overload_drops),
              (unsigned long long) t.received,
              (unsigned long long) peak_rss_kib(),
              (unsigned long long) t.rss_kib, (unsigned long long) t.pauses);
            std::fflush(stdout);
            self->quit();
          },
          [=](caf::error&) {
            self->delayed_send(self, std::chrono::milliseconds{5},
                               ask_atom::value);
          });
    },
  };
}

int usage() {
  std::cerr << "usage: flood sink URI [--work-us N]\n"
               "       flood send URI [--seconds S] [--payload BYTES] "
               "[--request-every K]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3)
    return usage();
  std::string mode = argv[1];
  std::string uri = argv[2];
  long work_us = 20, seconds = 10, payload = 1024, request_every = 16;
  std::vector<char*> relay_args{argv[0]};
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    auto number = [&](long& out) {
      if (i + 1 >= argc)
        return false;
      out = std::stol(argv[++i]);
      return true;
    };
    if (arg == "--work-us" ? !number(work_us)
        : arg == "--seconds" ? !number(seconds)
        : arg == "--payload" ? !number(payload)
        : arg == "--request-every" ? !number(request_every)
        : arg.rfind("--relay.", 0) == 0 ? (relay_args.push_back(argv[i]), false)
                                        : true)
      return usage();
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  relay::node_config cfg;
  cfg.add_message_type<item>()
    .add_message_type<probe>()
    .add_message_type<report>()
    .add_message_type<tally>();
  if (auto err = cfg.parse(static_cast<int>(relay_args.size()),
                           relay_args.data())) {
    std::cerr << "flood: bad option: " << cfg.render(err) << "\n";
    return 2;
  }
  relay::node node{cfg};
  if (mode == "sink") {
    auto s = node.system().spawn(sink, &node,
                                 std::chrono::microseconds{work_us});
    if (auto err = node.publish(s, "sink")) {
      std::cerr << "flood: " << relay::describe(err) << "\n";
      return 1;
    }
    auto real = node.listen(uri);
    if (!real) {
      std::cerr << "flood: " << relay::describe(real.error()) << "\n";
      return 1;
    }
    std::cout << "listening " << *real << std::endl;
    int sig = 0;
    sigwait(&signals, &sig);
    caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    return 0;
  }
  if (mode != "send")
    return usage();
  auto target = node.lookup(uri, "sink");
  if (!target) {
    std::cerr << "flood: lookup of 'sink' at " << uri
              << " failed: " << relay::describe(target.error()) << "\n";
    return 1;
  }
  {
    auto s = node.system().spawn(sender, &node, *target,
                                 static_cast<size_t>(payload),
                                 std::chrono::seconds{seconds},
                                 static_cast<uint64_t>(request_every));
    caf::scoped_actor self{node.system()};
    self->wait_for(s);
  }
  return 0;
}
