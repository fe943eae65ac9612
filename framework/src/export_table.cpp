#include "export_table.hpp"

#include <mutex>

#include <caf/abstract_actor.hpp>
#include <caf/exit_reason.hpp>

namespace relay {

std::atomic<uint64_t> export_table::next_serial_{0};

bool export_table::insert(const caf::actor_control_block* x) {
  auto aid = x->id();
  // A sender usually sends many messages in a row: once its id went into
  // this table from this thread, it stays exported until the actor exits,
  // and an exited actor gains nothing from a new entry (ids are never
  // reused). Spares the message path a lock and a lookup.
  struct last_insert {
    uint64_t table = 0;
    caf::actor_id aid = 0;
  };
  thread_local last_insert last;
  if (last.table == serial_ && last.aid == aid)
    return false;
  last = {serial_, aid};
  {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    if (actors_.count(aid) > 0)
      return false;
  }
  caf::strong_actor_ptr ptr{const_cast<caf::actor_control_block*>(x)};
  std::unique_lock<std::shared_mutex> guard{mtx_};
  std::shared_ptr<actor_traffic> traffic;
  if (auto i = tracked_.find(aid); i != tracked_.end())
    traffic = i->second;
  return actors_.emplace(aid, entry{std::move(ptr), std::move(traffic)}).second;
}

std::shared_ptr<actor_traffic> export_table::track(caf::actor_id aid) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto& traffic = tracked_[aid];
  if (!traffic)
    traffic = std::make_shared<actor_traffic>();
  if (auto i = actors_.find(aid); i != actors_.end())
    i->second.traffic = traffic;
  return traffic;
}

std::shared_ptr<actor_traffic> export_table::traffic_of(caf::actor_id aid) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = tracked_.find(aid);
  return i != tracked_.end() ? i->second : nullptr;
}

void export_table::watch(caf::strong_actor_ptr x) {
  std::weak_ptr<export_table> weak = shared_from_this();
  x->get()->attach_functor([aid = x->id(), weak](const caf::error& why) {
    if (auto table = weak.lock())
      table->on_exit(aid, why);
  });
}

void export_table::on_exit(caf::actor_id aid, const caf::error& reason) {
  caf::strong_actor_ptr released; // dropped outside the lock
  std::unique_lock<std::shared_mutex> guard{mtx_};
  if (auto i = actors_.find(aid); i != actors_.end()) {
    released.swap(i->second.ptr);
    actors_.erase(i);
  }
  tracked_.erase(aid);
  if (exited_.emplace(aid, reason).second) {
    exit_order_.push_back(aid);
    if (exit_order_.size() > max_exited) {
      exited_.erase(exit_order_.front());
      exit_order_.pop_front();
    }
  }
}

caf::strong_actor_ptr export_table::find(caf::actor_id aid) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = actors_.find(aid);
  return i != actors_.end() ? i->second.ptr : nullptr;
}

caf::strong_actor_ptr
export_table::find(caf::actor_id aid,
                   std::shared_ptr<actor_traffic>& traffic) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = actors_.find(aid);
  if (i == actors_.end()) {
    traffic = nullptr;
    return nullptr;
  }
  traffic = i->second.traffic;
  return i->second.ptr;
}

caf::error export_table::exit_reason_of(caf::actor_id aid) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = exited_.find(aid);
  return i != exited_.end() ? i->second : caf::error{caf::exit_reason::unknown};
}

void export_table::clear() {
  decltype(actors_) released;
  std::unique_lock<std::shared_mutex> guard{mtx_};
  released.swap(actors_);
  tracked_.clear();
  guard.unlock();
}

} // namespace relay
