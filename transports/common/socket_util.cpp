#include "common/socket_util.hpp"

#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace relay {

void unique_fd::reset(int fd) noexcept {
  // Never retry close() on EINTR: on Linux the descriptor is gone either way
  // and a retry could close a descriptor another thread just received.
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = fd;
}

namespace {

// strerror_r comes in a GNU flavour (returns the text) and an XSI flavour
// (fills the buffer); these overloads accept whichever the libc provides.
[[maybe_unused]] const char* strerror_result(const char* text, const char*) {
  return text;
}

[[maybe_unused]] const char* strerror_result(int rc, const char* buf) {
  return rc == 0 ? buf : "unknown error";
}

} // namespace

std::string errno_text(int err) {
  char buf[256] = {0};
  return strerror_result(::strerror_r(err, buf, sizeof(buf)), buf);
}

caf::error make_errno_error(errc code, const std::string& endpoint, int err,
                            const std::string& doing) {
  std::string what = endpoint;
  what += ": ";
  if (!doing.empty()) {
    what += doing;
    what += ": ";
  }
  what += errno_text(err);
  return make_error(code, std::move(what));
}

caf::error set_nonblocking(int fd, bool enabled, errc code,
                           const std::string& endpoint) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0)
    return make_errno_error(code, endpoint, errno, "fcntl(F_GETFL)");
  int wanted = enabled ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) < 0)
    return make_errno_error(code, endpoint, errno, "fcntl(F_SETFL)");
  return caf::none;
}

caf::error set_cloexec(int fd, errc code, const std::string& endpoint) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0)
    return make_errno_error(code, endpoint, errno, "fcntl(F_GETFD)");
  if ((flags & FD_CLOEXEC) == 0 && ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
    return make_errno_error(code, endpoint, errno, "fcntl(F_SETFD)");
  return caf::none;
}

} // namespace relay
