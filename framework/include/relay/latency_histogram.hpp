#pragma once

// Durations counted into fixed buckets, as a Prometheus histogram exposes
// them (https://prometheus.io/docs/concepts/metric_types/#histogram): the
// node keeps one per connection for the heartbeat's round trips.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace relay {

/// Counts durations into buckets with fixed upper bounds, from 25 µs to
/// 2.5 s, plus one for anything longer (Prometheus's +Inf).
///
/// Thread rules: record() and read() are thread-safe and lock-free (relaxed
/// atomics). A snapshot's count is the sum of its buckets, as Prometheus
/// requires of _count and the +Inf bucket; its sum may lag or lead them by
/// the durations being recorded at that moment.
class latency_histogram {
public:
  /// Upper bounds of the finite buckets, in seconds (the `le` labels).
  static constexpr std::array<double, 16> bounds = {
    25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3,  2.5e-3, 5e-3,
    10e-3, 25e-3, 50e-3,  100e-3, 250e-3, 500e-3, 1.0,   2.5};

  /// A copy of the counts at one moment.
  struct snapshot {
    /// Per bucket, not cumulative: buckets[i] counts durations in
    /// (bounds[i-1], bounds[i]]; the last element counts those above
    /// bounds.back().
    std::array<uint64_t, bounds.size() + 1> buckets{};
    /// Durations recorded, and their sum in nanoseconds.
    uint64_t count = 0;
    uint64_t sum_ns = 0;
    /// The latest duration recorded; meaningless while count == 0.
    std::chrono::nanoseconds last{0};
  };

  /// Counts `d` (negative durations count as zero).
  void record(std::chrono::nanoseconds d) noexcept {
    auto ns = d.count() < 0 ? uint64_t{0} : static_cast<uint64_t>(d.count());
    size_t i = 0;
    while (i < bounds.size() && static_cast<double>(ns) > bounds[i] * 1e9)
      ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
    last_ns_.store(ns, std::memory_order_relaxed);
  }

  snapshot read() const noexcept {
    snapshot result;
    for (size_t i = 0; i < buckets_.size(); ++i)
      result.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    result.count = 0;
    for (auto n : result.buckets)
      result.count += n;
    result.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    result.last = std::chrono::nanoseconds{
      static_cast<int64_t>(last_ns_.load(std::memory_order_relaxed))};
    return result;
  }

private:
  std::array<std::atomic<uint64_t>, bounds.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> last_ns_{0};
};

} // namespace relay
