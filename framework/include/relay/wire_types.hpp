#pragma once

// Wire forms of CAF types that may appear in messages (defined in
// message_registry.cpp). Declared here so user message types can contain
// them.

#include <caf/system_messages.hpp>
#include <caf/error.hpp>
#include <caf/timestamp.hpp>
#include <caf/unit.hpp>

#include "relay/actor_handles.hpp"

namespace relay {

void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const caf::error& x);
void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::error& x);
void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const caf::exit_msg& x);
void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::exit_msg& x);
void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const caf::down_msg& x);
void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::down_msg& x);
void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const caf::timestamp& x);
void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::timestamp& x);

// caf::unit_t is empty and needs no function: the archives elide empty
// classes.

} // namespace relay
