#include "common/transport_log.hpp"

#include <iostream>
#include <mutex>

namespace relay {

void transport_log(const std::string& line) noexcept {
  static std::mutex mtx;
  try {
    std::lock_guard<std::mutex> guard{mtx};
    std::cerr << line << '\n' << std::flush;
  } catch (...) {
    // Logging must never take a transport down.
  }
}

} // namespace relay
