#pragma once

#include <cstdint>
#include <string>

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "relay/message_registry.hpp"

namespace ping_pong {

/// A request carrying a sequence number and a payload to echo.
struct ping {
  uint64_t seq = 0;
  std::string payload;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(seq), CEREAL_NVP(payload));
  }
};

/// The echo of a ping.
struct pong {
  uint64_t seq = 0;
  std::string payload;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(seq), CEREAL_NVP(payload));
  }
};

/// The server's interface; a typed lookup checks it.
using pong_actor = caf::typed_actor<caf::replies_to<ping>::with<pong>>;

} // namespace ping_pong

RELAY_MESSAGE_TYPE(ping_pong::ping, "ping_pong.ping")
RELAY_MESSAGE_TYPE(ping_pong::pong, "ping_pong.pong")
