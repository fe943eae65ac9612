#include "route.hpp"

#include <caf/actor_cast.hpp>
#include <caf/make_message.hpp>
#include <caf/message_id.hpp>

namespace relay {

void route::add_pending(caf::actor_id sender, uint64_t response_id,
                        caf::weak_actor_ptr who) {
  std::lock_guard<std::mutex> guard{mtx_};
  pending_.emplace(pending_key{sender, response_id}, std::move(who));
}

void route::erase_pending(caf::actor_id sender, uint64_t response_id) {
  std::lock_guard<std::mutex> guard{mtx_};
  pending_.erase(pending_key{sender, response_id});
}

bool route::add_monitored(caf::actor_id aid) {
  std::lock_guard<std::mutex> guard{mtx_};
  return monitored_.insert(aid).second;
}

std::vector<caf::actor_id> route::take_monitored() {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<caf::actor_id> result{monitored_.begin(), monitored_.end()};
  monitored_.clear();
  return result;
}

void route::fail_pending(const caf::error& reason) {
  decltype(pending_) pending;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    pending.swap(pending_);
  }
  for (auto& [key, weak] : pending)
    if (auto sender = caf::actor_cast<caf::strong_actor_ptr>(weak))
      sender->enqueue(nullptr, caf::message_id{key.second},
                      caf::make_message(reason), nullptr);
}

} // namespace relay
