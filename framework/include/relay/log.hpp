#pragma once

#include <functional>
#include <string>

namespace relay {

/// Severity of a log line.
enum class log_level { error, warning, info, debug };

/// Receives every log line of Relay (all nodes of the process).
using log_sink = std::function<void(log_level, const std::string&)>;

/// Replaces the sink; pass nullptr to restore the default, which writes
/// warnings and errors to stderr as "relay: <level>: <text>". Thread-safe.
void set_log_sink(log_sink sink);

/// Writes one line. Thread-safe; the sink is called on the caller's thread.
void log(log_level level, const std::string& text);

} // namespace relay
