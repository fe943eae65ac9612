#include "common/byte_channel.hpp"

#include <cerrno>
#include <cstring>

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace relay {

byte_channel::~byte_channel() = default;

ssize_t byte_channel::write_fd(const iovec*, size_t, int) {
  errno = ENOTSUP;
  return -1;
}

std::string byte_channel::error_text(int err) const {
  return errno_text(err);
}

ssize_t socket_channel::read(void* buf, size_t len) {
  if (pass_fds_)
    return read_with_fds(buf, len);
  return ::read(fd_.get(), buf, len);
}

ssize_t socket_channel::read_with_fds(void* buf, size_t len) {
  if (!violation_.empty()) {
    errno = EPROTO;
    return -1;
  }
  // Room for a few descriptors: our peer attaches one per bulk frame, and
  // the kernel ends a read at each message that carries descriptors.
  constexpr size_t max_per_read = 4;
  alignas(cmsghdr) char control[CMSG_SPACE(max_per_read * sizeof(int))];
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  auto n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0)
    return n;
  for (auto* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    auto count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      // Kept even past the bound, so that every one of them is closed.
      fds_.emplace_back(fd);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0)
    violation_ = "the peer sent more than " + std::to_string(max_per_read)
                 + " descriptors at once";
  else if (fds_.size() > max_pending_fds)
    violation_ = "the peer sent more than " + std::to_string(max_pending_fds)
                 + " descriptors not announced by bulk frames";
  if (!violation_.empty()) {
    fds_.clear();
    errno = EPROTO;
    return -1;
  }
  return n;
}

ssize_t socket_channel::write(const iovec* iov, size_t count) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  return ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

ssize_t socket_channel::write_fd(const iovec* iov, size_t count, int fd) {
  if (!pass_fds_)
    return byte_channel::write_fd(iov, count, fd);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  auto* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool socket_channel::peer_caught_up() {
  int unread = 0;
  return ::ioctl(fd_.get(), SIOCOUTQ, &unread) == 0 && unread == 0;
}

unique_fd socket_channel::take_fd() {
  if (fds_.empty())
    return unique_fd{};
  auto result = std::move(fds_.front());
  fds_.erase(fds_.begin());
  return result;
}

std::string socket_channel::error_text(int err) const {
  if (err == EPROTO && !violation_.empty())
    return violation_;
  return byte_channel::error_text(err);
}

bool socket_channel::shutdown_write() {
  return ::shutdown(fd_.get(), SHUT_WR) == 0;
}

} // namespace relay
