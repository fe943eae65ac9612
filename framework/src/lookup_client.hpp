#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/expected.hpp>

namespace relay {

/// What a lookup reply carries.
struct lookup_result {
  caf::actor_id aid = 0;
  std::vector<std::string> interface;
};

/// The lookups this node waits for: request ids, replies, waiting threads.
/// node_impl::lookup (in lookup_client.cpp) drives it; lookup_protocol.cpp
/// completes it.
///
/// Thread rules: thread-safe.
class lookup_client {
public:
  /// Registers a new request; returns its id.
  uint64_t begin();

  /// Delivers the reply to request `id` (ignored if it timed out already).
  void complete(uint64_t id, caf::expected<lookup_result> result);

  /// Waits until request `id` has its reply, `gave_up()` holds (checked on
  /// every wake-up, see wake_all) or `deadline` passes. Forgets the request.
  /// Returns the reply, or nullopt if there is none.
  std::optional<caf::expected<lookup_result>>
  wait(uint64_t id, std::chrono::steady_clock::time_point deadline,
       const std::function<bool()>& gave_up);

  /// Forgets request `id` without waiting.
  void cancel(uint64_t id);

  /// Wakes every waiter to re-check its condition (a connection closed).
  void wake_all();

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::unordered_map<uint64_t, std::optional<caf::expected<lookup_result>>>
    pending_;
  uint64_t next_ = 1;
};

} // namespace relay
