#pragma once

// The framework's own protocols, each in a file of its own; the node
// registers them in its frame_table at construction (node_impl.cpp).

#include <caf/error.hpp>

#include "relay/frame_handler.hpp"

namespace relay {

caf::error add_message_protocol(frame_table& table);  // message_protocol.cpp
caf::error add_monitor_protocol(frame_table& table);  // monitor_protocol.cpp
caf::error add_lookup_protocol(frame_table& table);   // lookup_protocol.cpp
caf::error add_heartbeat_protocol(frame_table& table); // heartbeat.cpp
caf::error add_retire_protocol(frame_table& table);    // retire.cpp
caf::error add_session_protocol(frame_table& table);   // resume.cpp

class node_impl;
class route;

/// Detaches the down reporters of every local actor that the node behind
/// `r` monitored (monitor_protocol.cpp); for a lost node.
void stop_reporting_downs(node_impl& node, route& r);

} // namespace relay
