#include "rate_limited_log.hpp"

namespace relay {

void rate_limited_log::log(log_level level, const std::string& key,
                           const std::string& text) {
  auto now = now_();
  uint64_t before = 0;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (slots_.size() >= max_keys && slots_.count(key) == 0)
      slots_.clear();
    auto& s = slots_[key];
    if (now - s.window_start >= window_) {
      s.window_start = now;
      s.lines = 0;
    }
    if (s.lines >= burst_) {
      ++s.suppressed;
      ++total_suppressed_;
      return;
    }
    ++s.lines;
    before = s.suppressed;
    s.suppressed = 0;
  }
  if (before == 0)
    relay::log(level, text);
  else
    relay::log(level, text + " (" + std::to_string(before)
                        + " similar lines suppressed)");
}

uint64_t rate_limited_log::suppressed() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return total_suppressed_;
}

} // namespace relay
