// The trace behind relayctl monitor: off until watched, bounded, and a
// watcher that falls behind learns how much it lost.

#include "message_trace.hpp"

#include <gtest/gtest.h>

namespace {

relay::trace_record make(caf::actor_id receiver) {
  relay::trace_record x;
  x.receiver = receiver;
  x.type = "t";
  return x;
}

TEST(message_trace, is_off_until_watched) {
  relay::message_trace trace;
  EXPECT_FALSE(trace.active());
  EXPECT_EQ(trace.watch(), 0u);
  EXPECT_TRUE(trace.active());
  trace.record(make(1));
  uint64_t lost = 0;
  auto xs = trace.since(0, 10, lost);
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].seq, 1u);
  EXPECT_EQ(xs[0].receiver, 1u);
  EXPECT_NE(xs[0].time, caf::timestamp{});
  EXPECT_EQ(lost, 0u);
  // A second watcher starts after what is there.
  EXPECT_EQ(trace.watch(), 1u);
}

TEST(message_trace, turns_itself_off_once_the_lease_passed) {
  // A lease that has passed already: the next message finds it so.
  relay::message_trace trace{std::chrono::milliseconds{-1}};
  trace.watch();
  EXPECT_TRUE(trace.active());
  trace.record(make(1));
  EXPECT_FALSE(trace.active());
  uint64_t lost = 0;
  EXPECT_TRUE(trace.since(0, 10, lost).empty());
}

TEST(message_trace, keeps_the_newest_and_counts_what_a_watcher_lost) {
  relay::message_trace trace;
  trace.watch();
  auto n = relay::message_trace::capacity + 100;
  for (size_t i = 1; i <= n; ++i)
    trace.record(make(static_cast<caf::actor_id>(i)));
  uint64_t lost = 0;
  auto xs = trace.since(0, 10, lost);
  EXPECT_EQ(lost, 100u);
  ASSERT_EQ(xs.size(), 10u);
  EXPECT_EQ(xs.front().seq, 101u);
  EXPECT_EQ(xs.back().seq, 110u);
  xs = trace.since(n - 3, 10, lost);
  EXPECT_EQ(lost, 0u);
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_EQ(xs.front().seq, n - 2);
  // After the newest, or past it (a stale watcher): nothing, no harm.
  EXPECT_TRUE(trace.since(n, 10, lost).empty());
  EXPECT_TRUE(trace.since(n + 1000, 10, lost).empty());
}

} // namespace
