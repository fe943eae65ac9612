#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace relay {

/// Writes one line about a transport event that has no caller to return an
/// error to (a rejected peer, a failing accept), as a warning through
/// relay::log (so a test's log sink and the node's stderr default see it).
///
/// Thread-safe: lines from concurrent callers never interleave. Never throws.
void transport_log(const std::string& line) noexcept;

/// Counts the peers a transport refused; shared by the transport and its
/// listeners (see transport::rejected_peers).
using rejection_counter = std::shared_ptr<std::atomic<uint64_t>>;

} // namespace relay
