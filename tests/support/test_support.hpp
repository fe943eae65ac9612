#pragma once

// Helpers shared by Relay's tests: temporary directories that are removed
// also when a test fails, a log capture to assert on log lines, and test
// message types.

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "relay/log.hpp"
#include "relay/message_registry.hpp"

namespace relay::test {

/// A fresh directory under /tmp, removed with everything in it.
class temp_dir {
public:
  temp_dir() {
    char tmpl[] = "/tmp/relay-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const {
    return path_;
  }

  /// A uds URI for a socket file named `name` in this directory.
  std::string uds(const std::string& name) const {
    return "uds://" + path_ + "/" + name;
  }

private:
  std::string path_;
};

/// Captures every log line while alive, and lets a test wait for one.
class log_capture {
public:
  log_capture() {
    set_log_sink([this](log_level, const std::string& line) {
      std::lock_guard<std::mutex> guard{mtx_};
      lines_.push_back(line);
      cv_.notify_all();
    });
  }

  ~log_capture() {
    set_log_sink(nullptr);
  }

  /// Waits up to `timeout` for a line containing every string in `parts`.
  bool wait_for(std::vector<std::string> parts,
                std::chrono::milliseconds timeout = std::chrono::seconds{5}) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] {
      for (auto& line : lines_) {
        bool all = true;
        for (auto& p : parts)
          all = all && line.find(p) != std::string::npos;
        if (all)
          return true;
      }
      return false;
    });
  }

  /// Every line so far.
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> guard{mtx_};
    return lines_;
  }

  std::string dump() {
    std::lock_guard<std::mutex> guard{mtx_};
    std::string result;
    for (auto& line : lines_)
      result += line + "\n";
    return result;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
};

/// Test message types.
struct ping {
  uint64_t seq = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, payload);
  }
};

struct pong {
  uint64_t seq = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, payload);
  }
};

/// Never registered: sending it to a remote actor must fail visibly.
struct unregistered {
  int32_t x = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x);
  }
};

} // namespace relay::test

RELAY_MESSAGE_TYPE(relay::test::ping, "relay.test.ping")
RELAY_MESSAGE_TYPE(relay::test::pong, "relay.test.pong")
RELAY_MESSAGE_TYPE(relay::test::unregistered, "relay.test.unregistered")
