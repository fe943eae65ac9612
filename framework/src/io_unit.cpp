#include "io_unit.hpp"

#include <memory>

#include <caf/scheduler/abstract_coordinator.hpp>

namespace relay {

io_unit* io_unit::of(caf::actor_system& sys) {
  thread_local std::unique_ptr<io_unit> unit;
  if (!unit)
    unit = std::make_unique<io_unit>(sys);
  return &unit->system() == &sys ? unit.get() : nullptr;
}

void io_unit::run_pending() {
  for (size_t i = 0; !pending_.empty(); ++i) {
    auto* job = pending_.front();
    pending_.pop_front();
    if (i >= max_jobs) {
      system().scheduler().enqueue(job); // keeps the reference
      continue;
    }
    switch (job->resume(this, max_messages)) {
      case caf::resumable::resume_later:
        system().scheduler().enqueue(job);
        break;
      case caf::resumable::done:
      case caf::resumable::awaiting_message:
      case caf::resumable::shutdown_execution_unit:
        intrusive_ptr_release(job);
        break;
    }
  }
}

} // namespace relay
