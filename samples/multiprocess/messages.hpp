#pragma once

// Messages between the multiprocess coordinator and its workers.

#include <cstdint>

#include <caf/atom.hpp>

#include "relay/message_registry.hpp"

namespace multiprocess {

/// A work item and its result.
struct item {
  uint64_t id = 0;
  uint64_t value = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, value);
  }
};

/// A worker introduces itself: `(register_atom, worker_actor, pid)`.
using register_atom = caf::atom_constant<caf::atom("register")>;

} // namespace multiprocess

RELAY_MESSAGE_TYPE(multiprocess::item, "multiprocess.item")
