// The round-trip histogram: which bucket a duration lands in, and what a
// snapshot says.

#include "relay/latency_histogram.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using relay::latency_histogram;

TEST(latency_histogram, a_bound_belongs_to_its_own_bucket) {
  latency_histogram h;
  h.record(25us);        // le 25e-6, inclusive as Prometheus's le
  h.record(26us);        // le 50e-6
  h.record(1ms);         // le 1e-3
  h.record(2500ms);      // le 2.5, the last finite bucket
  h.record(3s);          // +Inf
  h.record(-5ns);        // clock trouble: counted as zero
  auto s = h.read();
  EXPECT_EQ(s.buckets[0], 2u);
  EXPECT_EQ(s.buckets[1], 1u);
  EXPECT_EQ(s.buckets[5], 1u);
  EXPECT_EQ(s.buckets[latency_histogram::bounds.size() - 1], 1u);
  EXPECT_EQ(s.buckets.back(), 1u);
  EXPECT_EQ(s.count, 6u);
  EXPECT_EQ(s.sum_ns, 25'000u + 26'000 + 1'000'000 + 2'500'000'000 + 3'000'000'000);
  EXPECT_EQ(s.last, 0ns);
}

TEST(latency_histogram, concurrent_records_are_all_counted) {
  latency_histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i)
        h.record(std::chrono::microseconds{(i + t) % 3000});
    });
  for (auto& t : threads)
    t.join();
  auto s = h.read();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_EQ(std::accumulate(s.buckets.begin(), s.buckets.end(), uint64_t{0}),
            40000u);
}

} // namespace
