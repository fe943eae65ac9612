#include "relay/frame_handler.hpp"

#include "relay/error.hpp"

namespace relay {

caf::error frame_table::add(uint8_t kind, std::string name,
                            frame_handler handler) {
  if (kind == 0 || kind == static_cast<uint8_t>(frame_kind::hello)
      || kind == static_cast<uint8_t>(frame_kind::reject))
    return make_error(errc::invalid_argument,
                      "frame kind " + std::to_string(kind)
                        + " cannot have a handler");
  if (!handler)
    return make_error(errc::invalid_argument,
                      "empty handler for frame kind " + std::to_string(kind));
  auto& e = entries_[kind];
  if (e.handler)
    return make_error(errc::already_registered,
                      "frame kind " + std::to_string(kind)
                        + " is already handled by '" + e.name + "'");
  e.name = std::move(name);
  e.handler = std::move(handler);
  return caf::none;
}

std::string frame_table::name_of(uint8_t kind) const {
  auto& e = entries_[kind];
  return e.handler ? e.name : "kind " + std::to_string(kind);
}

} // namespace relay
