#include "common/byte_channel.hpp"

#include <sys/socket.h>
#include <unistd.h>

namespace relay {

byte_channel::~byte_channel() = default;

std::string byte_channel::error_text(int err) const {
  return errno_text(err);
}

ssize_t socket_channel::read(void* buf, size_t len) {
  return ::read(fd_.get(), buf, len);
}

ssize_t socket_channel::write(const iovec* iov, size_t count) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  return ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool socket_channel::shutdown_write() {
  return ::shutdown(fd_.get(), SHUT_WR) == 0;
}

} // namespace relay
