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
#include <caf/node_id.hpp>

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
  /// Registers a new request to node `to`; returns its id.
  uint64_t begin(const caf::node_id& to);

  /// Delivers the reply to request `id` from node `from`. Ignored if the
  /// request timed out already or went to another node (a peer cannot
  /// answer lookups it was not asked).
  void complete(uint64_t id, const caf::node_id& from,
                caf::expected<lookup_result> result);

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
  struct pending {
    caf::node_id to;
    std::optional<caf::expected<lookup_result>> result;
  };
  std::unordered_map<uint64_t, pending> pending_;
  uint64_t next_ = 1;
};

} // namespace relay
