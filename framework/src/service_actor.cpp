#include "service_actor.hpp"

namespace relay {

caf::behavior service_actor(caf::event_based_actor* self,
                            std::function<void(uint64_t)> on_deadline) {
  return {
    [=](arm_atom, uint64_t key, caf::timespan timeout) {
      self->delayed_send(self, timeout, check_atom::value, key);
    },
    [=](check_atom, uint64_t key) { on_deadline(key); },
    [](deferred_task& task) { task.run(); },
  };
}

} // namespace relay
