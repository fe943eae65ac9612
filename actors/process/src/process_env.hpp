#pragma once

// What a parent tells a process child through its environment
// (process_child.cpp writes it, parent_link.cpp reads it).

namespace relay {

/// The URI of the channel to the parent ("fd://3", "pipe://3,4", or the
/// parent's uds/shm endpoint).
constexpr const char* env_parent = "RELAY_PARENT";
/// The parent's pid, to tell whether it died before PR_SET_PDEATHSIG.
constexpr const char* env_parent_pid = "RELAY_PARENT_PID";
/// The one-time name of the process actor that takes the ready message.
constexpr const char* env_parent_name = "RELAY_PARENT_NAME";

} // namespace relay
