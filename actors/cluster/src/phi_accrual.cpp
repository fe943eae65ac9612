#include "relay/phi_accrual.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace relay {

namespace {

double to_ms(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

} // namespace

phi_accrual_detector::phi_accrual_detector(settings cfg) : cfg_(cfg) {
  if (cfg_.threshold <= 0 || cfg_.max_samples < 2
      || cfg_.min_std_deviation.count() <= 0
      || cfg_.acceptable_pause.count() < 0
      || cfg_.first_heartbeat_estimate.count() <= 0)
    throw std::invalid_argument(
      "phi accrual detector: threshold, min deviation and first estimate "
      "must be positive, the pause not negative, at least 2 samples");
  samples_.reserve(cfg_.max_samples);
}

void phi_accrual_detector::add_sample(double interval_ms) {
  if (samples_.size() < cfg_.max_samples) {
    samples_.push_back(interval_ms);
  } else {
    auto& old = samples_[next_];
    sum_ -= old;
    sum_sq_ -= old * old;
    old = interval_ms;
    next_ = (next_ + 1) % cfg_.max_samples;
  }
  sum_ += interval_ms;
  sum_sq_ += interval_ms * interval_ms;
}

void phi_accrual_detector::heartbeat(clock::time_point now) {
  if (!started_) {
    // Akka's seeding: two intervals one quarter-mean either side of the
    // estimate, so the first verdicts do not rest on a single sample.
    auto mean = to_ms(cfg_.first_heartbeat_estimate);
    add_sample(mean - mean / 4);
    add_sample(mean + mean / 4);
    started_ = true;
    last_ = now;
    return;
  }
  if (now < last_)
    return; // a caller's clock never runs backwards; ignore if it does
  if (available(now))
    add_sample(to_ms(now - last_));
  last_ = now;
}

double phi_accrual_detector::mean_ms() const noexcept {
  return samples_.empty() ? 0.0 : sum_ / samples_.size();
}

double phi_accrual_detector::std_deviation_ms() const noexcept {
  if (samples_.empty())
    return 0.0;
  auto mean = mean_ms();
  auto var = sum_sq_ / samples_.size() - mean * mean;
  return var > 0 ? std::sqrt(var) : 0.0;
}

double phi_accrual_detector::phi_of(double elapsed_ms, double mean_ms,
                                    double sd_ms) {
  // Logistic approximation of the normal CDF (Bowling et al. 2009), as in
  // Akka: accurate to 1.4e-4 and cheap.
  auto y = (elapsed_ms - mean_ms) / sd_ms;
  auto e = std::exp(-y * (1.5976 + 0.070566 * y * y));
  if (elapsed_ms > mean_ms)
    return -std::log10(e / (1.0 + e));
  return -std::log10(1.0 - 1.0 / (1.0 + e));
}

double phi_accrual_detector::phi(clock::time_point now) const {
  if (!started_ || now <= last_)
    return 0.0;
  auto mean = mean_ms() + to_ms(cfg_.acceptable_pause);
  auto sd = std::max(std_deviation_ms(), to_ms(cfg_.min_std_deviation));
  auto p = phi_of(to_ms(now - last_), mean, sd);
  // exp() overflows to inf far past the mean: phi is then "certainly
  // dead", which compares correctly; a NaN would not.
  return std::isnan(p) ? cfg_.threshold * 2 : p;
}

} // namespace relay
