#include "node_event_hub.hpp"

#include <algorithm>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

namespace relay {

node_listener::~node_listener() = default;

void node_listener::on_node_up(const peer_info&) {
  // nop
}

void node_listener::on_node_down(const caf::node_id&, const caf::error&) {
  // nop
}

namespace {

/// Sends `msg` to every live observer and prunes the dead ones.
template <class Message>
void notify(std::vector<caf::weak_actor_ptr>& observers, const Message& msg) {
  auto i = observers.begin();
  while (i != observers.end()) {
    if (auto hdl = caf::actor_cast<caf::actor>(*i)) {
      caf::anon_send(hdl, msg);
      ++i;
    } else {
      i = observers.erase(i);
    }
  }
}

} // namespace

void node_event_hub::monitor_nodes(const caf::actor& observer) {
  if (!observer)
    return;
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(observer);
  std::lock_guard<std::mutex> guard{mtx_};
  if (std::find(observers_.begin(), observers_.end(), weak) == observers_.end())
    observers_.push_back(std::move(weak));
}

bool node_event_hub::demonitor_nodes(const caf::actor& observer) {
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(observer);
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = std::find(observers_.begin(), observers_.end(), weak);
  if (i == observers_.end())
    return false;
  observers_.erase(i);
  return true;
}

void node_event_hub::monitor_node_locked(const caf::actor& observer,
                                         const caf::node_id& node) {
  std::lock_guard<std::mutex> guard{mtx_};
  monitors_[node].push_back(caf::actor_cast<caf::weak_actor_ptr>(observer));
}

void node_event_hub::add_listener(std::shared_ptr<node_listener> x) {
  if (!x)
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  listeners_.push_back(std::move(x));
}

bool node_event_hub::remove_listener(const std::shared_ptr<node_listener>& x) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = std::find(listeners_.begin(), listeners_.end(), x);
  if (i == listeners_.end())
    return false;
  listeners_.erase(i);
  return true;
}

void node_event_hub::node_up_locked(const peer_info& info, bool hidden) {
  if (hidden)
    return;
  std::vector<std::shared_ptr<node_listener>> listeners;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    notify(observers_, node_up_msg{info.node, info.name, info.uri});
    listeners = listeners_;
  }
  for (auto& x : listeners)
    x->on_node_up(info);
}

void node_event_hub::node_down_locked(const caf::node_id& node,
                                      const caf::error& reason, bool hidden) {
  std::vector<std::shared_ptr<node_listener>> listeners;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    node_down_msg msg{node, reason};
    if (!hidden)
      notify(observers_, msg);
    if (auto i = monitors_.find(node); i != monitors_.end()) {
      notify(i->second, msg);
      monitors_.erase(i);
    }
    if (!hidden)
      listeners = listeners_;
  }
  for (auto& x : listeners)
    x->on_node_down(node, reason);
}

} // namespace relay
