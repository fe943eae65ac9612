#include "relay/log.hpp"

#include <cstdio>
#include <memory>
#include <mutex>

namespace relay {

namespace {

std::mutex sink_mtx;
std::shared_ptr<log_sink> current_sink;

const char* level_name(log_level x) {
  switch (x) {
    case log_level::error: return "error";
    case log_level::warning: return "warning";
    case log_level::info: return "info";
    default: return "debug";
  }
}

} // namespace

void set_log_sink(log_sink sink) {
  std::lock_guard<std::mutex> guard{sink_mtx};
  current_sink = sink ? std::make_shared<log_sink>(std::move(sink)) : nullptr;
}

void log(log_level level, const std::string& text) {
  std::shared_ptr<log_sink> sink;
  {
    std::lock_guard<std::mutex> guard{sink_mtx};
    sink = current_sink;
  }
  if (sink) {
    (*sink)(level, text);
    return;
  }
  if (level <= log_level::warning)
    fprintf(stderr, "relay: %s: %s\n", level_name(level), text.c_str());
}

} // namespace relay
