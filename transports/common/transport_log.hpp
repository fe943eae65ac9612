#pragma once

#include <string>

namespace relay {

/// Writes one line about a transport event that has no caller to return an
/// error to (a rejected peer, a failing accept). The one place transports log;
/// it writes to stderr until Relay has a logging facility.
///
/// Thread-safe: lines from concurrent callers never interleave. Never throws.
void transport_log(const std::string& line) noexcept;

} // namespace relay
