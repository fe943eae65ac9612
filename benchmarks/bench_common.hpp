#pragma once

// What every benchmark program shares: the clock, CPU pinning, options and
// the JSON lines scripts/bench collects.

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace bench {

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

/// Pins the calling process to `cpu` (no-op for -1).
inline void pin(int cpu) {
  if (cpu < 0)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

/// --size B, --count N, --cpus S,C (server CPU, client CPU).
struct options {
  size_t size = 64;
  size_t count = 10000;
  int server_cpu = -1;
  int client_cpu = -1;

  /// Parses argv[first..argc); false on anything else.
  bool parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; i += 2) {
      std::string arg = argv[i];
      if (i + 1 >= argc)
        return false;
      if (arg == "--size")
        size = std::stoul(argv[i + 1]);
      else if (arg == "--count")
        count = std::stoul(argv[i + 1]);
      else if (arg == "--cpus")
        std::sscanf(argv[i + 1], "%d,%d", &server_cpu, &client_cpu);
      else
        return false;
    }
    return true;
  }
};

/// Number of leading samples dropped as warm-up.
inline size_t warmup_of(size_t count) {
  return std::min<size_t>(count / 10, 1000);
}

/// Prints the rtt line for round trips `us` (microseconds), after dropping
/// the warm-up samples at the front. `extra` is appended inside the object
/// (", \"key\": value" or empty).
inline void print_rtt(const char* system, const std::string& transport,
                      size_t size, std::vector<double> us,
                      const std::string& extra = {}) {
  auto warm = std::min(warmup_of(us.size()), us.size() / 2);
  us.erase(us.begin(), us.begin() + static_cast<long>(warm));
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) {
    return us.empty() ? 0.0
                      : us[std::min(us.size() - 1, static_cast<size_t>(
                                                     p * (us.size() - 1) + 0.5))];
  };
  std::printf("{\"system\": \"%s\", \"transport\": \"%s\", \"case\": \"rtt\", "
              "\"size\": %zu, \"count\": %zu, \"p50_us\": %.2f, "
              "\"p99_us\": %.2f%s}\n",
              system, transport.c_str(), size, us.size(), pct(0.5), pct(0.99),
              extra.c_str());
  std::fflush(stdout);
}

/// Prints the throughput line: `count` messages received, the first and
/// the last `elapsed_ns` apart.
inline void print_throughput(const char* system, const std::string& transport,
                             size_t size, size_t count, int64_t elapsed_ns,
                             const std::string& extra = {}) {
  auto rate = static_cast<double>(count - 1) * 1e9
              / static_cast<double>(std::max<int64_t>(elapsed_ns, 1));
  std::printf("{\"system\": \"%s\", \"transport\": \"%s\", \"case\": "
              "\"throughput\", \"size\": %zu, \"count\": %zu, "
              "\"msgs_per_s\": %.0f, \"mb_per_s\": %.1f%s}\n",
              system, transport.c_str(), size, count, rate,
              rate * static_cast<double>(size) / 1e6, extra.c_str());
  std::fflush(stdout);
}

} // namespace bench
