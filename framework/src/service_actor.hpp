#pragma once

#include <cstdint>
#include <functional>

#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/timespan.hpp>

namespace relay {

/// Arms a deadline: (arm_atom, key, timeout). When it passes, the service
/// actor calls its `on_deadline(key)`; the callee decides whether the thing
/// the deadline guarded has finished meanwhile.
using arm_atom = caf::atom_constant<caf::atom("rarm")>;

/// A deadline that passed: (check_atom, key). Internal to the actor.
using check_atom = caf::atom_constant<caf::atom("rcheck")>;

/// Work to run on the service actor, for work that must not run where it is
/// requested (e.g. inside an actor's critical section).
struct deferred_task {
  std::function<void()> run;
};

/// The node's service actor. Deadlines run on CAF's clock, so a
/// test_coordinator drives them deterministically.
caf::behavior service_actor(caf::event_based_actor* self,
                            std::function<void(uint64_t)> on_deadline);

} // namespace relay

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::deferred_task)
