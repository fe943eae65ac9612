#include "message_trace.hpp"

#include <algorithm>

namespace relay {

void message_trace::record(trace_record x) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (std::chrono::steady_clock::now() > lease_end_) {
    active_.store(false, std::memory_order_relaxed);
    ring_.clear();
    return;
  }
  x.seq = next_seq_++;
  if (x.time == caf::timestamp{})
    x.time = caf::make_timestamp();
  if (ring_.size() == capacity)
    ring_.pop_front();
  ring_.push_back(std::move(x));
}

uint64_t message_trace::watch() {
  std::lock_guard<std::mutex> guard{mtx_};
  lease_end_ = std::chrono::steady_clock::now() + lease_;
  active_.store(true, std::memory_order_relaxed);
  return next_seq_ - 1;
}

std::vector<trace_record> message_trace::since(uint64_t seq, size_t max,
                                               uint64_t& lost) {
  std::vector<trace_record> result;
  std::lock_guard<std::mutex> guard{mtx_};
  lost = 0;
  if (ring_.empty())
    return result;
  auto oldest = ring_.front().seq;
  if (seq + 1 < oldest) {
    lost = oldest - seq - 1;
    seq = oldest - 1;
  }
  // Records are contiguous by seq: skip to the first one after `seq`.
  auto skip = std::min<uint64_t>(seq + 1 - oldest, ring_.size());
  for (auto i = ring_.begin() + static_cast<std::ptrdiff_t>(skip);
       i != ring_.end() && result.size() < max; ++i)
    result.push_back(*i);
  return result;
}

} // namespace relay
