#include "common/transport_log.hpp"

#include "relay/log.hpp"

namespace relay {

void transport_log(const std::string& line) noexcept {
  try {
    log(log_level::warning, line);
  } catch (...) {
    // Logging must never take a transport down.
  }
}

} // namespace relay
