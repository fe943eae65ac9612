// Drives the real peer of an in-process node through a fake connection:
// every byte after the first is a stream of frames as a remote node would
// send them (hello or reject first, then messages, monitors, downs, links,
// lookups, heartbeats, retires, module kinds), cut as a stream transport
// cuts them and handed to peer::on_frame. Covers the handshake decoder and
// every frame decoder a peer reaches, message bodies included (actor
// references, built-in types, the registered types ping and pong). Bit 0
// of the first byte makes the connection untrusted.
//
// State carries over between inputs (the node, its echo actor), as it does
// in a real node; a crash that needs an earlier input to reproduce shows
// when the corpus is replayed (ctest fuzz_replay_peer).
//
// Seeds: fuzz/corpus/peer (fuzz/make_seeds.py).

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <cereal/types/string.hpp>

#include <caf/all.hpp>

#include "fuzz_support.hpp"
#include "node_impl.hpp"
#include "peer.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"

namespace {

struct ping {
  uint64_t seq = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, payload);
  }
};

struct pong {
  uint64_t seq = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, payload);
  }
};

} // namespace

RELAY_MESSAGE_TYPE(ping, "relay.test.ping")
RELAY_MESSAGE_TYPE(pong, "relay.test.pong")

namespace {

struct fixture {
  relay::node_config cfg;
  std::unique_ptr<relay::node> n;
  caf::actor echo;
  std::atomic<bool> dead{false};

  fixture() {
    relay::set_log_sink([](relay::log_level, const std::string&) {});
    cfg.add_message_type<ping>().add_message_type<pong>();
    cfg.node_name = "fuzz";
    cfg.max_frame_size = 1 << 20;
    // Every input ends in a break; its session waits 20 ms for a resume,
    // not 2 s: inputs come by the thousand.
    cfg.heartbeat_interval = std::chrono::milliseconds{10};
    cfg.heartbeat_timeout = std::chrono::milliseconds{20};
    n = std::make_unique<relay::node>(cfg);
    spawn_echo();
    if (echo.id() != echo_id) {
      std::fprintf(stderr, "peer_fuzzer: echo has id %llu, the seeds say "
                           "%llu: update ECHO_ID in fuzz/make_seeds.py and "
                           "echo_id here\n",
                   static_cast<unsigned long long>(echo.id()),
                   static_cast<unsigned long long>(echo_id));
      std::abort();
    }
  }

  /// Spawns, publishes and exports the echo actor (again, if an input
  /// killed it: a kill cannot be trapped; other exits are ignored).
  void spawn_echo() {
    dead = false;
    echo = n->system().spawn([](caf::event_based_actor* self) -> caf::behavior {
      self->set_exit_handler([](const caf::exit_msg&) {});
      // Quietly: fuzzed messages of other types and DOWNs are the norm.
      self->set_default_handler(caf::drop);
      self->set_down_handler([](const caf::down_msg&) {});
      return {
        [](const ping& x) { return pong{x.seq, x.payload}; },
        [](const std::string& x) { return x; },
        [](int32_t x) { return x; },
      };
    });
    caf::actor_cast<caf::abstract_actor*>(echo)->attach_functor(
      [this](const caf::error&) { dead = true; });
    n->publish(echo, "echo");
    // Exported as if a reference had gone out, so that a message seed can
    // reach it without a lookup first (make_seeds.py uses its id).
    n->impl().export_actor(caf::actor_cast<caf::actor_control_block*>(echo));
  }

  ~fixture() {
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
    echo = nullptr;
    n.reset();
  }

  /// The id fuzz/make_seeds.py sends its messages to.
  static constexpr caf::actor_id echo_id = 10;
};

fixture* instance = nullptr;

fixture& the_fixture() {
  if (instance == nullptr)
    instance = new fixture;
  return *instance;
}

} // namespace

// Stops the node while everything it uses still exists (replay_main.cpp
// calls it before returning; at exit, statics that CAF made during the run
// are already gone). libFuzzer never calls it: the node lives until _exit.
extern "C" void relay_fuzz_teardown() {
  delete instance;
  instance = nullptr;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  auto& f = the_fixture();
  if (f.dead)
    f.spawn_echo();
  auto trust = (data[0] & 1) != 0 ? relay::trust_level::untrusted
                                  : relay::trust_level::trusted;
  auto conn = std::make_shared<relay::fuzz::fake_connection>();
  auto p = f.n->impl().start_peer(conn, false, "", "fuzz", trust);
  std::string why;
  if (p)
    why = relay::fuzz::for_each_frame(data + 1, size - 1, 1 << 20,
                                      [&](const relay::frame_header& h,
                                          const std::byte* body) {
                                        conn->deliver(h, body);
                                        return !conn->closed();
                                      });
  conn->finish(why.empty()
                 ? relay::make_error(relay::errc::connection_closed,
                                     "peer closed the connection")
                 : relay::make_error(relay::errc::protocol_error, why));
  return 0;
}
