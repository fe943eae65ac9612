// The deployment file parser (docs/processes.md), fed any text.
//
// Seeds: fuzz/corpus/deployment (the samples' deployment files).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "relay/deployment.hpp"
#include "relay/log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    relay::set_log_sink([](relay::log_level, const std::string&) {});
    return true;
  }();
  static_cast<void>(quiet);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static_cast<void>(relay::parse_deployment(text, "fuzz.toml", "/nonexistent"));
  return 0;
}
