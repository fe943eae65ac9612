#pragma once

// The messages of the supervised pipeline: a job and its result.

#include <cstdint>

#include "relay/message_registry.hpp"

namespace pipeline {

struct job {
  uint64_t id = 0;
  uint64_t payload = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, payload);
  }
};

struct result {
  uint64_t id = 0;
  uint64_t value = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, value);
  }
};

} // namespace pipeline

RELAY_MESSAGE_TYPE(pipeline::job, "pipeline.job")
RELAY_MESSAGE_TYPE(pipeline::result, "pipeline.result")
