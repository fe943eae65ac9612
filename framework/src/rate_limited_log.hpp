#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "relay/log.hpp"

namespace relay {

/// Log lines that a peer can provoke, rate-limited per key: at most `burst`
/// lines per key in each `window`; the rest are counted, and the next line
/// that passes says how many similar lines were suppressed. So a peer that
/// sends a million undeliverable messages costs a few lines, not a million.
///
/// Thread rules: thread-safe; the sink is called outside the lock.
class rate_limited_log {
public:
  static constexpr size_t default_burst = 5;
  static constexpr std::chrono::seconds default_window{1};

  /// Bound on distinct keys kept; past it, the table starts over.
  static constexpr size_t max_keys = 1024;

  using clock_function = std::function<std::chrono::steady_clock::time_point()>;

  /// `now` reads the time (tests pass their own clock).
  explicit rate_limited_log(size_t burst = default_burst,
                            std::chrono::steady_clock::duration window
                            = default_window,
                            clock_function now = std::chrono::steady_clock::now)
    : burst_(burst), window_(window), now_(std::move(now)) {
    // nop
  }

  /// Logs `text` at `level` unless lines of `key` exceeded the rate.
  void log(log_level level, const std::string& key, const std::string& text);

  /// Lines suppressed so far, over all keys.
  uint64_t suppressed() const;

private:
  struct slot {
    std::chrono::steady_clock::time_point window_start;
    size_t lines = 0;
    uint64_t suppressed = 0;
  };

  const size_t burst_;
  const std::chrono::steady_clock::duration window_;
  const clock_function now_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, slot> slots_;
  uint64_t total_suppressed_ = 0;
};

} // namespace relay
