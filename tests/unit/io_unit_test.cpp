// io_unit under CAF's deterministic test_coordinator: the messages of one
// read wake each receiver once, at the end of the read, in wire order; with
// I/O-thread delivery the receivers run right there, bounded.

#include "io_unit.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "test_coordinator.hpp"

namespace relay {
namespace {

using received = std::shared_ptr<std::vector<int>>;

// Records every int it receives; forwards it to `next` if set.
caf::behavior recorder(caf::event_based_actor* self, received log,
                       caf::actor next) {
  return {[=](int x) {
    log->push_back(x);
    if (next)
      self->send(next, x);
  }};
}

class io_unit_test : public ::testing::Test {
protected:
  void TearDown() override {
    io_unit::close();
    for (auto& a : actors)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  caf::actor spawn_recorder(received log, caf::actor next = {}) {
    auto a = sys.spawn(recorder, std::move(log), std::move(next));
    actors.push_back(a);
    sched.run(); // the actor starts and waits, idle
    return a;
  }

  // Enqueues `x` to `dest` as handle_message does.
  void deliver(const caf::actor& dest, int x, bool run_here = false) {
    auto* unit = io_unit::batching(sys, run_here);
    caf::actor_cast<caf::abstract_actor*>(dest)->enqueue(
      caf::make_mailbox_element(nullptr, caf::make_message_id(), {}, x), unit);
  }

  caf::actor_system_config cfg;
  caf::actor_system sys{test::testing_config(cfg)};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  std::vector<caf::actor> actors;
};

TEST_F(io_unit_test, without_an_open_batch_a_receiver_is_woken_at_once) {
  EXPECT_EQ(io_unit::batching(sys, false), nullptr);
  auto log = std::make_shared<std::vector<int>>();
  auto a = spawn_recorder(log);
  deliver(a, 1);
  EXPECT_EQ(sched.jobs.size(), 1u);
  sched.run();
  EXPECT_EQ(*log, std::vector<int>{1});
}

TEST_F(io_unit_test, a_batch_wakes_each_receiver_once_at_its_end) {
  auto log_a = std::make_shared<std::vector<int>>();
  auto log_b = std::make_shared<std::vector<int>>();
  auto a = spawn_recorder(log_a);
  auto b = spawn_recorder(log_b);
  io_unit::open();
  for (int i = 0; i < 100; ++i)
    deliver(i % 3 == 0 ? b : a, i);
  // Everything is in the mailboxes; nobody was woken yet.
  EXPECT_FALSE(sched.has_job());
  EXPECT_TRUE(log_a->empty());
  io_unit::close();
  EXPECT_EQ(sched.jobs.size(), 2u); // one wake per receiver
  sched.run();
  std::vector<int> want_a;
  std::vector<int> want_b;
  for (int i = 0; i < 100; ++i)
    (i % 3 == 0 ? want_b : want_a).push_back(i);
  EXPECT_EQ(*log_a, want_a);
  EXPECT_EQ(*log_b, want_b);
  // Closed: the next message wakes its receiver at once again.
  deliver(a, 100);
  EXPECT_EQ(sched.jobs.size(), 1u);
}

TEST_F(io_unit_test, a_unit_kept_as_context_after_its_batch_schedules_at_once) {
  // An actor that ran on the I/O thread keeps its unit as CAF context; a
  // later enqueue through it, from here or another thread, must not wait
  // for some future batch.
  auto log = std::make_shared<std::vector<int>>();
  auto a = spawn_recorder(log);
  io_unit::open();
  auto* stale = io_unit::batching(sys, false);
  io_unit::close();
  auto* dest = caf::actor_cast<caf::abstract_actor*>(a);
  dest->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                          1),
                stale);
  EXPECT_EQ(sched.jobs.size(), 1u);
  sched.run();
  std::thread other{[&] {
    dest->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(),
                                            {}, 2),
                  stale);
  }};
  other.join();
  EXPECT_EQ(sched.jobs.size(), 1u);
  sched.run();
  EXPECT_EQ(*log, (std::vector<int>{1, 2}));
}

TEST_F(io_unit_test, closing_twice_or_without_a_batch_does_nothing) {
  io_unit::close();
  io_unit::open();
  io_unit::close();
  io_unit::close();
  EXPECT_FALSE(sched.has_job());
}

TEST_F(io_unit_test, run_here_runs_receivers_in_close_within_the_bounds) {
  auto log_a = std::make_shared<std::vector<int>>();
  auto log_b = std::make_shared<std::vector<int>>();
  // a forwards to b: b is woken through the unit while a runs in close().
  auto b = spawn_recorder(log_b);
  auto a = spawn_recorder(log_a, b);
  io_unit::open();
  for (int i = 0; i < 40; ++i)
    deliver(a, i, true);
  EXPECT_TRUE(log_a->empty());
  io_unit::close();
  // a ran here for max_messages, then went to the scheduler; b ran here
  // for what a had sent it.
  ASSERT_EQ(log_a->size(), io_unit::max_messages);
  EXPECT_EQ(*log_b, *log_a);
  EXPECT_EQ(sched.jobs.size(), 1u);
  sched.run();
  std::vector<int> all(40);
  for (int i = 0; i < 40; ++i)
    all[i] = i;
  EXPECT_EQ(*log_a, all);
  EXPECT_EQ(*log_b, all);
}

TEST_F(io_unit_test, at_most_max_jobs_receivers_run_here_the_rest_is_woken) {
  std::vector<received> logs;
  std::vector<caf::actor> dests;
  for (size_t i = 0; i < io_unit::max_jobs + 4; ++i) {
    logs.push_back(std::make_shared<std::vector<int>>());
    dests.push_back(spawn_recorder(logs.back()));
  }
  io_unit::open();
  for (size_t i = 0; i < dests.size(); ++i)
    deliver(dests[i], static_cast<int>(i), true);
  io_unit::close();
  size_t ran = 0;
  for (auto& log : logs)
    ran += log->size();
  EXPECT_EQ(ran, io_unit::max_jobs);
  EXPECT_EQ(sched.jobs.size(), 4u);
  sched.run();
  for (size_t i = 0; i < logs.size(); ++i)
    EXPECT_EQ(*logs[i], std::vector<int>{static_cast<int>(i)});
}

} // namespace
} // namespace relay
