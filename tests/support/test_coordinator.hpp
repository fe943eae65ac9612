#pragma once

// CAF's deterministic scheduler for actor tests: the test steps the
// scheduler and the clock by hand (caf/scheduler/test_coordinator.hpp).

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>

namespace relay::test {

/// Makes `cfg` use CAF's test_coordinator; returns it for chaining into an
/// actor_system's constructor.
inline caf::actor_system_config& testing_config(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  return cfg;
}

} // namespace relay::test
