#include "common/accept_util.hpp"

#include <cerrno>

#include <sys/epoll.h>
#include <sys/socket.h>

#include "common/transport_log.hpp"

namespace relay {

namespace {

void pause_accepting(const std::shared_ptr<reactor>& io, reactor::token token,
                     int err, const std::string& uri) {
  transport_log(uri + ": accept failed: " + errno_text(err)
                + "; pausing accepts for "
                + std::to_string(accept_retry_delay.count()) + " ms");
  if (io->modify(token, 0))
    return;
  // Tokens are never reused: once the listener is gone, modify() fails
  // harmlessly.
  std::weak_ptr<reactor> weak_io = io;
  io->dispatch_after(accept_retry_delay, [weak_io, token] {
    if (auto r = weak_io.lock())
      r->modify(token, EPOLLIN);
  });
}

} // namespace

void accept_pending(const std::shared_ptr<reactor>& io, int fd, reactor::token token,
                    const std::atomic<bool>& stopped, const std::string& uri,
                    const std::function<void(unique_fd)>& on_conn) {
  for (int i = 0; i < max_accepts_per_event && !stopped; ++i) {
    unique_fd conn{::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)};
    if (conn) {
      on_conn(std::move(conn));
      continue;
    }
    switch (errno) {
      case EINTR:
      case ECONNABORTED: // the peer gave up; try the next one
      case EPROTO:
      case EPERM:
        continue;
      case EAGAIN:
#if EWOULDBLOCK != EAGAIN
      case EWOULDBLOCK:
#endif
        return;
      default:
        pause_accepting(io, token, errno, uri);
        return;
    }
  }
}

namespace {

class adopted_acceptor : public acceptor {
public:
  explicit adopted_acceptor(std::string uri) : uri_(std::move(uri)) {
    // nop
  }

  std::string uri() const override {
    return uri_;
  }

private:
  std::string uri_;
};

} // namespace

caf::expected<std::unique_ptr<acceptor>>
accept_adopted(const std::shared_ptr<reactor>& io, std::string uri,
               connection_ptr conn, accept_callback on_accept) {
  if (!on_accept)
    return make_error(errc::invalid_argument, "listen without a callback");
  io->dispatch([on_accept = std::move(on_accept), conn = std::move(conn)] {
    on_accept(conn);
  });
  return std::unique_ptr<acceptor>{std::make_unique<adopted_acceptor>(std::move(uri))};
}

} // namespace relay

