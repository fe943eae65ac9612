// The sources of introspection topics (introspection.hpp).

#include "introspection.hpp"

#include <algorithm>

#include <caf/abstract_actor.hpp>
#include <caf/actor_cast.hpp>

namespace relay {

namespace {

/// Whether the actor behind `x` terminated (a handle may outlive it).
bool is_gone(const caf::weak_actor_ptr& x) {
  auto hdl = caf::actor_cast<caf::strong_actor_ptr>(x);
  return !hdl || hdl->get()->getf(caf::abstract_actor::is_terminated_flag);
}

} // namespace

void introspection_sources::add(const std::string& topic,
                                const caf::actor& source) {
  if (!source)
    return;
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(source);
  std::lock_guard<std::mutex> guard{mtx_};
  auto& xs = sources_[topic];
  // Those that ended go here too, not only when the topic is asked for: a
  // weak handle keeps its actor's memory (a process child per restart).
  xs.erase(std::remove_if(xs.begin(), xs.end(), is_gone), xs.end());
  if (std::find(xs.begin(), xs.end(), weak) == xs.end())
    xs.push_back(std::move(weak));
}

std::vector<caf::actor> introspection_sources::of(const std::string& topic) {
  std::vector<caf::actor> result;
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = sources_.find(topic);
  if (i == sources_.end())
    return result;
  auto& xs = i->second;
  xs.erase(std::remove_if(xs.begin(), xs.end(),
                          [&](const caf::weak_actor_ptr& x) {
                            if (is_gone(x))
                              return true;
                            result.push_back(caf::actor_cast<caf::actor>(x));
                            return false;
                          }),
           xs.end());
  return result;
}

void introspection_sources::clear() {
  std::lock_guard<std::mutex> guard{mtx_};
  sources_.clear();
}

} // namespace relay
