#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

namespace relay {

/// The phi-accrual failure detector of Hayashibara, Défago, Yared and
/// Katayama ("The phi accrual failure detector", SRDS 2004), with the
/// refinements of Akka's PhiAccrualFailureDetector: an acceptable pause
/// added to the mean, a floor on the standard deviation, and a logistic
/// approximation of the normal distribution's tail.
///
/// It keeps the last `max_samples` intervals between heartbeats and, at
/// time t, answers how unlikely it is that the next heartbeat is merely late:
///
///   phi(t) = -log10(P(interval > t - last))   with the interval normal,
///            mean = sample mean + acceptable_pause,
///            sd   = max(sample standard deviation, min_std_deviation).
///
/// phi 1 means a 10 % chance the peer is alive and late, phi 8 one in 10^8.
/// An interval is sampled only while the peer counts as available, so one
/// long pause does not teach the detector to tolerate the next.
///
/// Thread rules: not thread-safe; one owner. Times are the caller's
/// steady clock, passed in, so tests decide what time it is.
class phi_accrual_detector {
public:
  using clock = std::chrono::steady_clock;
  using duration = std::chrono::nanoseconds;

  struct settings {
    /// Suspect the peer when phi reaches this. Akka's default is 8.
    double threshold = 8.0;
    /// Intervals kept for the mean and deviation.
    size_t max_samples = 200;
    /// Floor on the deviation: keeps a very regular peer from being
    /// suspected at the first jitter.
    duration min_std_deviation = std::chrono::milliseconds{100};
    /// Silence tolerated on top of the mean (GC, scheduling, load).
    duration acceptable_pause = std::chrono::milliseconds{500};
    /// The interval assumed before any was measured (the heartbeat
    /// interval); seeds the history with mean +- mean / 4, as Akka does.
    duration first_heartbeat_estimate = std::chrono::milliseconds{100};
  };

  explicit phi_accrual_detector(settings cfg);

  /// Records a heartbeat that arrived at `now`.
  void heartbeat(clock::time_point now);

  /// Suspicion at `now`; 0 before the first heartbeat.
  double phi(clock::time_point now) const;

  /// Whether phi(now) is below the threshold.
  bool available(clock::time_point now) const {
    return phi(now) < cfg_.threshold;
  }

  /// Whether any heartbeat arrived.
  bool started() const noexcept {
    return started_;
  }

  /// The time of the last heartbeat (meaningless before started()).
  clock::time_point last_heartbeat() const noexcept {
    return last_;
  }

  /// Mean and standard deviation of the sampled intervals, in ms.
  double mean_ms() const noexcept;
  double std_deviation_ms() const noexcept;

  const settings& config() const noexcept {
    return cfg_;
  }

  /// phi for `elapsed_ms` since the last heartbeat given a normal
  /// distribution of `mean_ms` and `sd_ms` (sd_ms > 0). Exposed for tests.
  static double phi_of(double elapsed_ms, double mean_ms, double sd_ms);

private:
  void add_sample(double interval_ms);

  settings cfg_;
  bool started_ = false;
  clock::time_point last_;
  std::vector<double> samples_; // ring buffer of intervals in ms
  size_t next_ = 0;
  double sum_ = 0;
  double sum_sq_ = 0;
};

} // namespace relay
