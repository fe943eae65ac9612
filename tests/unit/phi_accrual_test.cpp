// The phi-accrual detector against the numbers its paper and Akka's
// implementation give, with time passed in.

#include "relay/phi_accrual.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

using namespace std::chrono_literals;
using relay::phi_accrual_detector;

namespace {

using clock_type = phi_accrual_detector::clock;

phi_accrual_detector::settings defaults() {
  return phi_accrual_detector::settings{};
}

// Feeds `n` heartbeats `interval` apart from `t`; returns the last time.
clock_type::time_point feed(phi_accrual_detector& d, clock_type::time_point t,
                            int n, std::chrono::milliseconds interval) {
  for (int i = 0; i < n; ++i) {
    t += interval;
    d.heartbeat(t);
  }
  return t;
}

// The first silence (10 ms steps) after which the detector suspects.
std::chrono::milliseconds detection_time(const phi_accrual_detector& d,
                                         clock_type::time_point last) {
  for (auto t = 0ms; t < 60s; t += 10ms)
    if (!d.available(last + t))
      return t;
  return 60s;
}

} // namespace

TEST(phi_accrual, phi_of_matches_the_normal_tail) {
  // At the mean, P(later) = 0.5: phi = -log10(0.5).
  EXPECT_NEAR(phi_accrual_detector::phi_of(100, 100, 10), 0.301, 0.01);
  // One deviation past the mean: P = 0.1587, phi = 0.80.
  EXPECT_NEAR(phi_accrual_detector::phi_of(110, 100, 10), 0.80, 0.02);
  // Two: P = 0.02275, phi = 1.64; three: P = 0.00135, phi = 2.87.
  EXPECT_NEAR(phi_accrual_detector::phi_of(120, 100, 10), 1.64, 0.03);
  EXPECT_NEAR(phi_accrual_detector::phi_of(130, 100, 10), 2.87, 0.05);
  // Before the mean phi is small and grows monotonically.
  EXPECT_LT(phi_accrual_detector::phi_of(50, 100, 10), 0.01);
  double last = 0;
  for (int ms = 0; ms < 400; ms += 5) {
    auto p = phi_accrual_detector::phi_of(ms, 100, 10);
    EXPECT_GE(p, last);
    last = p;
  }
  // Far past the mean: infinite suspicion, never NaN.
  EXPECT_FALSE(std::isnan(phi_accrual_detector::phi_of(1e6, 100, 10)));
}

TEST(phi_accrual, nothing_is_suspected_before_the_first_heartbeat) {
  phi_accrual_detector d{defaults()};
  auto t = clock_type::now();
  EXPECT_FALSE(d.started());
  EXPECT_EQ(d.phi(t + 1h), 0.0);
  EXPECT_TRUE(d.available(t + 1h));
}

TEST(phi_accrual, regular_heartbeats_are_never_suspected) {
  phi_accrual_detector d{defaults()};
  auto t = feed(d, clock_type::now(), 100, 100ms);
  EXPECT_NEAR(d.mean_ms(), 100, 1);
  // Up to the acceptable pause on top of the interval: no suspicion.
  EXPECT_TRUE(d.available(t + 100ms));
  EXPECT_TRUE(d.available(t + 600ms));
  EXPECT_LT(d.phi(t + 600ms), 1.0);
}

TEST(phi_accrual, default_detection_of_a_silent_peer_is_under_two_seconds) {
  phi_accrual_detector d{defaults()};
  auto t = feed(d, clock_type::now(), 50, 100ms);
  auto detect = detection_time(d, t);
  // mean 100 + pause 500, deviation floored at 100 ms, phi 8: about 5.2
  // deviations past 600 ms.
  EXPECT_GT(detect, 900ms);
  EXPECT_LT(detect, 1500ms);
  EXPECT_GE(d.phi(t + detect), d.config().threshold);
}

TEST(phi_accrual, jittery_heartbeats_widen_the_tolerance) {
  phi_accrual_detector steady{defaults()};
  phi_accrual_detector jittery{defaults()};
  auto t0 = clock_type::now();
  auto ts = feed(steady, t0, 100, 100ms);
  auto tj = t0;
  for (int i = 0; i < 100; ++i) {
    tj += (i % 2 == 0) ? 10ms : 390ms; // mean 200, deviation 190
    jittery.heartbeat(tj);
  }
  EXPECT_GT(jittery.std_deviation_ms(), 150);
  EXPECT_GT(detection_time(jittery, tj), detection_time(steady, ts));
}

TEST(phi_accrual, a_long_pause_is_not_learned) {
  phi_accrual_detector d{defaults()};
  auto t = feed(d, clock_type::now(), 50, 100ms);
  auto mean = d.mean_ms();
  t += 5s; // suspected by then
  EXPECT_FALSE(d.available(t));
  d.heartbeat(t);
  EXPECT_NEAR(d.mean_ms(), mean, 0.01);
  t = feed(d, t, 1, 100ms);
  EXPECT_TRUE(d.available(t + 200ms));
}

TEST(phi_accrual, the_history_is_bounded) {
  auto cfg = defaults();
  cfg.max_samples = 10;
  phi_accrual_detector d{cfg};
  auto t = feed(d, clock_type::now(), 100, 300ms);
  // Only the last 10 intervals count: the 2 seeded ones are gone.
  EXPECT_NEAR(d.mean_ms(), 300, 0.01);
  EXPECT_NEAR(d.std_deviation_ms(), 0, 0.01);
  t = feed(d, t, 10, 100ms);
  EXPECT_NEAR(d.mean_ms(), 100, 0.01);
}

TEST(phi_accrual, unusable_settings_are_refused) {
  auto bad = defaults();
  bad.threshold = 0;
  EXPECT_THROW(phi_accrual_detector{bad}, std::invalid_argument);
  bad = defaults();
  bad.min_std_deviation = 0ms;
  EXPECT_THROW(phi_accrual_detector{bad}, std::invalid_argument);
  bad = defaults();
  bad.max_samples = 1;
  EXPECT_THROW(phi_accrual_detector{bad}, std::invalid_argument);
}
