#include "name_registry.hpp"

#include <caf/abstract_actor.hpp>

#include "relay/error.hpp"

namespace relay {

caf::error name_registry::publish(caf::strong_actor_ptr handle,
                                  std::string name,
                                  std::vector<std::string> interface) {
  if (!handle)
    return make_error(errc::invalid_argument, "cannot publish a null handle");
  if (handle->node() != local_)
    return make_error(errc::invalid_argument,
                      "cannot publish '" + name
                        + "': the actor lives on another node (publish it "
                          "there)");
  if (name.empty())
    return make_error(errc::invalid_argument, "cannot publish an empty name");
  if (name.size() > max_name_size)
    return make_error(errc::invalid_argument,
                      "cannot publish a name of " + std::to_string(name.size())
                        + " bytes (at most "
                        + std::to_string(max_name_size) + ")");
  auto aid = handle->id();
  auto* actor = handle->get();
  caf::strong_actor_ptr released; // dropped outside the lock
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = names_.find(name);
    if (i != names_.end()) {
      if (!i->second.handle->get()->getf(
            caf::abstract_actor::is_terminated_flag))
        return make_error(errc::already_registered,
                          "name '" + i->first + "' is already published");
      // Its actor terminated; on_exit has not run yet (see find).
      released.swap(i->second.handle);
      i->second = entry{handle, std::move(interface)};
    } else {
      names_.emplace(name, entry{handle, std::move(interface)});
    }
  }
  // Attached outside the lock: if the actor terminated already, the functor
  // runs at once and takes the lock.
  std::weak_ptr<name_registry> weak = shared_from_this();
  actor->attach_functor([weak, name, aid](const caf::error&) {
    if (auto self = weak.lock())
      self->on_exit(name, aid);
  });
  if (actor->getf(caf::abstract_actor::is_terminated_flag)) {
    on_exit(name, aid);
    return make_error(errc::invalid_argument,
                      "cannot publish '" + name
                        + "': the actor has terminated");
  }
  return caf::none;
}

void name_registry::on_exit(const std::string& name, caf::actor_id aid) {
  caf::strong_actor_ptr released; // dropped outside the lock
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = names_.find(name);
  if (i != names_.end() && i->second.handle->id() == aid) {
    released.swap(i->second.handle);
    names_.erase(i);
  }
}

bool name_registry::unpublish(const std::string& name) {
  caf::strong_actor_ptr released;
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = names_.find(name);
  if (i == names_.end())
    return false;
  released.swap(i->second.handle);
  names_.erase(i);
  return true;
}

std::optional<name_registry::entry>
name_registry::find(const std::string& name) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = names_.find(name);
  if (i == names_.end())
    return std::nullopt;
  // CAF marks an actor terminated before it runs its attachables, so a
  // DOWN observer may act before on_exit removed the name: a terminated
  // actor's name resolves no more from the moment it terminates.
  if (i->second.handle->get()->getf(caf::abstract_actor::is_terminated_flag))
    return std::nullopt;
  return i->second;
}

std::vector<std::pair<std::string, name_registry::entry>>
name_registry::list() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return {names_.begin(), names_.end()};
}

void name_registry::clear() {
  decltype(names_) released;
  std::lock_guard<std::mutex> guard{mtx_};
  released.swap(names_);
}

} // namespace relay
