// The node's service actor under CAF's deterministic test_coordinator: its
// deadlines (the handshake timeout) fire exactly when the clock says so.

#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "test_coordinator.hpp"

#include "service_actor.hpp"

using namespace std::chrono_literals;

namespace relay {
namespace {

class service_actor_test : public ::testing::Test {
protected:
  void SetUp() override {
    self = sys.spawn(service_actor,
                     [this](uint64_t key) { fired.push_back(key); });
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
  std::vector<uint64_t> fired;
};

TEST_F(service_actor_test, deadline_fires_only_when_it_passes) {
  caf::anon_send(self, arm_atom::value, uint64_t{7}, caf::timespan{5s});
  sched.run();
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(sched.clock().schedule().size(), 1u);
  EXPECT_EQ(sched.clock().advance_time(4999ms), 0u);
  sched.run();
  EXPECT_TRUE(fired.empty()) << "fired before the deadline";
  EXPECT_EQ(sched.clock().advance_time(1ms), 1u);
  sched.run();
  EXPECT_EQ(fired, std::vector<uint64_t>{7});
}

TEST_F(service_actor_test, deadlines_fire_in_time_order_each_once) {
  caf::anon_send(self, arm_atom::value, uint64_t{1}, caf::timespan{3s});
  caf::anon_send(self, arm_atom::value, uint64_t{2}, caf::timespan{1s});
  caf::anon_send(self, arm_atom::value, uint64_t{3}, caf::timespan{2s});
  sched.run();
  while (sched.clock().trigger_timeout())
    sched.run();
  EXPECT_EQ(fired, (std::vector<uint64_t>{2, 3, 1}));
  EXPECT_FALSE(sched.clock().has_pending_timeout());
}

TEST_F(service_actor_test, deferred_task_runs_on_the_actor) {
  int runs = 0;
  caf::anon_send(self, deferred_task{[&] { ++runs; }});
  EXPECT_EQ(runs, 0) << "ran on the sender's thread";
  sched.run();
  EXPECT_EQ(runs, 1);
}

} // namespace
} // namespace relay
