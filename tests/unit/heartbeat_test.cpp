// The heartbeat actor under CAF's deterministic test_coordinator: which
// connection gets a heartbeat and which is closed, tick by tick.

#include "heartbeat.hpp"

#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "test_coordinator.hpp"

using namespace std::chrono_literals;

namespace relay {
namespace {

/// A connection as the test drives it.
struct fake_connection {
  uint64_t in = 0;
  uint64_t out = 0;
  int heartbeats = 0;
  bool closed = false;
  /// The remote answers probes (hello flag_probe).
  bool probes = false;
  int probes_sent = 0;
};

class heartbeat_test : public ::testing::Test {
protected:
  void start(caf::timespan interval, caf::timespan timeout) {
    self = sys.spawn(heartbeat_actor, interval, timeout, [this] {
      std::vector<heartbeat_probe> result;
      for (auto& [key, c] : conns) {
        if (c.closed)
          continue;
        heartbeat_probe p;
        p.key = key;
        p.received = c.in;
        p.sent = c.out;
        p.send_heartbeat = [&c = c] {
          ++c.heartbeats;
          ++c.out;
        };
        p.send_probe = [&c = c] {
          if (!c.probes)
            return false;
          ++c.probes_sent;
          ++c.out;
          return true;
        };
        p.close_silent = [&c = c] { c.closed = true; };
        result.push_back(std::move(p));
      }
      return result;
    });
    sched.run();
  }

  /// Advances the clock by one interval and runs the tick.
  void tick() {
    ASSERT_TRUE(sched.clock().trigger_timeout());
    sched.run();
  }

  void TearDown() override {
    caf::anon_send_exit(self, caf::exit_reason::user_shutdown);
    sched.clock().cancel_all();
    sched.run();
  }

  caf::actor_system_config cfg;
  caf::actor_system sys{test::testing_config(cfg)};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  caf::actor self;
  std::map<uint64_t, fake_connection> conns;
};

TEST_F(heartbeat_test, ticks_once_per_interval_on_the_actor_clock) {
  start(500ms, 2s);
  EXPECT_EQ(sched.clock().advance_time(499ms), 0u);
  EXPECT_EQ(sched.clock().advance_time(1ms), 1u);
}

TEST_F(heartbeat_test, an_idle_connection_gets_a_heartbeat_each_interval) {
  conns[1];
  start(500ms, 2s);
  tick(); // first sight: remembered, nothing sent
  EXPECT_EQ(conns[1].heartbeats, 0);
  for (int i = 1; i <= 3; ++i) {
    conns[1].in++; // the peer keeps talking, we do not
    tick();
    EXPECT_EQ(conns[1].heartbeats, i);
  }
  EXPECT_FALSE(conns[1].closed);
}

TEST_F(heartbeat_test, a_probing_connection_gets_a_probe_each_tick_and_no_heartbeat) {
  conns[1].probes = true; // idle
  conns[2].probes = true; // busy: a probe all the same (it times a round trip)
  conns[3];               // no probes: heartbeats as before
  start(500ms, 2s);
  for (int i = 0; i < 3; ++i) {
    conns[1].in += 8; // the probes' answers
    conns[2].in += 8;
    conns[2].out += 5;
    conns[3].in += 1;
    tick();
  }
  // The first tick only learns the counters (as for heartbeats).
  EXPECT_EQ(conns[1].probes_sent, 2);
  EXPECT_EQ(conns[2].probes_sent, 2);
  EXPECT_EQ(conns[1].heartbeats, 0);
  EXPECT_EQ(conns[2].heartbeats, 0);
  EXPECT_EQ(conns[3].probes_sent, 0);
  EXPECT_EQ(conns[3].heartbeats, 2);
}

TEST_F(heartbeat_test, a_silent_probing_connection_still_closes_after_the_timeout) {
  conns[1].probes = true;
  start(500ms, 2s);
  tick(); // learns the counters
  for (int i = 0; i < 3; ++i)
    tick();
  EXPECT_FALSE(conns[1].closed); // 3 silent ticks
  tick();
  EXPECT_TRUE(conns[1].closed); // the 4th: 2 s of silence
}

TEST_F(heartbeat_test, a_busy_connection_gets_no_heartbeat) {
  conns[1];
  start(500ms, 2s);
  tick();
  for (int i = 0; i < 5; ++i) {
    conns[1].in++;
    conns[1].out++;
    tick();
  }
  EXPECT_EQ(conns[1].heartbeats, 0);
  EXPECT_FALSE(conns[1].closed);
}

TEST_F(heartbeat_test, a_silent_connection_closes_after_the_timeout_not_before) {
  conns[1];
  start(500ms, 2s);
  tick(); // t = 0.5 s: first sight
  // Silent from here: 2 s is four ticks.
  for (int i = 0; i < 3; ++i) {
    tick();
    EXPECT_FALSE(conns[1].closed) << "closed after " << i + 1 << " silent ticks";
  }
  tick();
  EXPECT_TRUE(conns[1].closed);
}

TEST_F(heartbeat_test, any_frame_received_resets_the_silence) {
  conns[1];
  start(500ms, 2s);
  tick();
  for (int round = 0; round < 4; ++round) {
    tick();
    tick();
    tick();
    conns[1].in++; // a heartbeat from the peer, just in time
    tick();
  }
  EXPECT_FALSE(conns[1].closed);
}

TEST_F(heartbeat_test, a_timeout_that_is_not_a_multiple_rounds_up) {
  conns[1];
  start(500ms, 1200ms); // three ticks: at least 1.2 s of silence
  tick();
  tick();
  tick();
  EXPECT_FALSE(conns[1].closed);
  tick();
  EXPECT_TRUE(conns[1].closed);
}

TEST_F(heartbeat_test, connections_are_judged_one_by_one_and_forgotten_when_gone) {
  conns[1];
  conns[2];
  start(500ms, 1s);
  tick();
  tick();
  conns[2].in++;
  tick();
  EXPECT_TRUE(conns[1].closed);
  EXPECT_FALSE(conns[2].closed);
  conns.erase(1);
  conns[3]; // new connection: a grace period of its own
  tick();
  tick();
  EXPECT_FALSE(conns[3].closed);
  EXPECT_TRUE(conns[2].closed);
}

} // namespace
} // namespace relay
