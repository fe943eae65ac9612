#pragma once

// Small POSIX socket helpers shared by the socket transports.

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>

#include <caf/error.hpp>

#include "relay/error.hpp"

namespace relay {

/// Owns a file descriptor and closes it when destroyed.
///
/// Thread rules: not thread-safe; one owner at a time (move-only).
class unique_fd {
public:
  unique_fd() noexcept = default;

  explicit unique_fd(int fd) noexcept : fd_(fd) {
    // nop
  }

  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {
    // nop
  }

  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(other.release());
    return *this;
  }

  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  ~unique_fd() {
    reset();
  }

  /// Returns the descriptor, or -1 if empty. Ownership stays here.
  int get() const noexcept {
    return fd_;
  }

  explicit operator bool() const noexcept {
    return fd_ >= 0;
  }

  /// Gives up ownership and returns the descriptor (-1 if empty).
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

  /// Closes the owned descriptor, if any, and takes ownership of `fd`.
  void reset(int fd = -1) noexcept;

private:
  int fd_ = -1;
};

/// Returns the text of errno value `err` ("Connection refused"). Thread-safe.
std::string errno_text(int err);

/// Makes a Relay error "<endpoint>: <doing>: <strerror>" (or
/// "<endpoint>: <strerror>" when `doing` is empty). Thread-safe.
caf::error make_errno_error(errc code, const std::string& endpoint, int err,
                            const std::string& doing = std::string{});

/// A poll(2) timeout for `left` (rounded up, at most INT_MAX ms).
inline int poll_timeout(std::chrono::milliseconds left) noexcept {
  return static_cast<int>(
    std::min<long long>(left.count(), std::numeric_limits<int>::max() - 1)
    + 1);
}

/// Sets or clears O_NONBLOCK on `fd`. Errors carry `code` and name
/// `endpoint`. Thread-safe.
caf::error set_nonblocking(int fd, bool enabled, errc code,
                           const std::string& endpoint);

/// Sets FD_CLOEXEC on `fd`. Errors carry `code` and name `endpoint`.
/// Thread-safe.
caf::error set_cloexec(int fd, errc code, const std::string& endpoint);

} // namespace relay
