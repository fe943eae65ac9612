#include "pipe/pipe_transport.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/byte_channel.hpp"
#include "common/accept_util.hpp"
#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"

namespace relay {

namespace {

/// Two pipes as one byte channel. The reactor watches one descriptor per
/// channel, so the channel's descriptor is an epoll instance of its own
/// holding both pipe ends: it is readable whenever either end is ready, and
/// on_ready() asks it which.
class pipe_channel : public byte_channel {
public:
  pipe_channel(unique_fd in, unique_fd out, unique_fd ep)
    : in_(std::move(in)), out_(std::move(out)), ep_(std::move(ep)) {
    // nop
  }

  int fd() const noexcept override {
    return ep_.get();
  }

  ssize_t read(void* buf, size_t len) override {
    return ::read(in_.get(), buf, len);
  }

  ssize_t write(const iovec* iov, size_t count) override {
    return ::writev(out_.get(), iov, static_cast<int>(count));
  }

  uint32_t watch(uint32_t wanted) noexcept override {
    epoll_event in{};
    in.events = (wanted & EPOLLIN) != 0 ? uint32_t{EPOLLIN} : 0u;
    in.data.fd = in_.get();
    ::epoll_ctl(ep_.get(), EPOLL_CTL_MOD, in_.get(), &in);
    epoll_event out{};
    out.events = (wanted & EPOLLOUT) != 0 ? uint32_t{EPOLLOUT} : 0u;
    out.data.fd = out_.get();
    ::epoll_ctl(ep_.get(), EPOLL_CTL_MOD, out_.get(), &out);
    return wanted != 0 ? uint32_t{EPOLLIN} : 0u;
  }

  uint32_t on_ready(uint32_t) noexcept override {
    epoll_event events[2];
    auto n = ::epoll_wait(ep_.get(), events, 2, 0);
    uint32_t result = 0;
    for (int i = 0; i < n; ++i) {
      auto ev = events[i].events;
      if (events[i].data.fd == in_.get())
        result |= ev & (EPOLLIN | EPOLLHUP | EPOLLERR);
      else if ((ev & EPOLLOUT) != 0)
        result |= EPOLLOUT;
      else if ((ev & (EPOLLHUP | EPOLLERR)) != 0)
        result |= EPOLLHUP; // the reader of our write end is gone
    }
    return result;
  }

private:
  unique_fd in_;
  unique_fd out_;
  unique_fd ep_;
};


caf::expected<std::pair<int, int>> parse(const endpoint& ep) {
  auto bad = [&] {
    return make_error(errc::invalid_uri,
                      "'" + ep.text
                        + "': the pipe transport takes pipe://R,W with R the "
                          "read and W the write descriptor (e.g. pipe://3,4)");
  };
  if (ep.rest.size() < 5 || ep.rest.compare(0, 2, "//") != 0)
    return bad();
  auto body = ep.rest.substr(2);
  auto comma = body.find(',');
  if (comma == std::string::npos)
    return bad();
  auto r = body.substr(0, comma);
  auto w = body.substr(comma + 1);
  for (auto* s : {&r, &w})
    if (s->empty() || s->size() > 9
        || s->find_first_not_of("0123456789") != std::string::npos)
      return bad();
  return std::make_pair(std::atoi(r.c_str()), std::atoi(w.c_str()));
}

/// Checks that `fd` is the `read` (or write) end of a pipe.
caf::error check_end(int fd, bool read, errc code, const std::string& uri) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return make_errno_error(code, uri, errno, "not an open descriptor");
  if (!S_ISFIFO(st.st_mode))
    return make_error(code, uri + ": descriptor " + std::to_string(fd)
                              + " is not a pipe");
  auto mode = ::fcntl(fd, F_GETFL) & O_ACCMODE;
  if (read ? mode != O_RDONLY : mode != O_WRONLY)
    return make_error(code, uri + ": descriptor " + std::to_string(fd)
                              + " is not the " + (read ? "read" : "write")
                              + " end of a pipe");
  return caf::none;
}

} // namespace

pipe_transport::pipe_transport(std::shared_ptr<reactor> io,
                               transport_options options)
  : io_(std::move(io)), options_(std::move(options)) {
  ::signal(SIGPIPE, SIG_IGN);
}

std::string pipe_transport::scheme() const {
  return scheme_name;
}

caf::expected<connection_ptr> pipe_transport::adopt(const endpoint& ep,
                                                    errc code) {
  auto fds = parse(ep);
  if (!fds)
    return fds.error();
  auto& uri = ep.text;
  if (auto err = check_end(fds->first, true, code, uri))
    return err;
  if (auto err = check_end(fds->second, false, code, uri))
    return err;
  unique_fd ep_fd{::epoll_create1(EPOLL_CLOEXEC)};
  if (!ep_fd)
    return make_errno_error(code, uri, errno, "epoll_create1");
  for (int fd : {fds->first, fds->second}) {
    if (auto err = set_nonblocking(fd, true, code, uri))
      return err;
    if (auto err = set_cloexec(fd, code, uri))
      return err;
    epoll_event ev{};
    ev.events = 0;
    ev.data.fd = fd;
    if (::epoll_ctl(ep_fd.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      return make_errno_error(code, uri, errno, "epoll_ctl");
  }
  auto chan = std::make_unique<pipe_channel>(unique_fd{fds->first},
                                             unique_fd{fds->second},
                                             std::move(ep_fd));
  return stream_connection::make(io_, std::move(chan),
                                 uri + " (pid " + std::to_string(::getpid())
                                   + "'s inherited pipes)",
                                 options_);
}

caf::expected<std::unique_ptr<acceptor>>
pipe_transport::listen(const endpoint& ep, accept_callback on_accept) {
  if (!on_accept)
    return make_error(errc::invalid_argument, "listen without a callback");
  auto conn = adopt(ep, errc::listen_failed);
  if (!conn)
    return conn.error();
  return accept_adopted(io_, ep.text, std::move(*conn), std::move(on_accept));
}

caf::expected<connection_ptr> pipe_transport::connect(const endpoint& ep) {
  return adopt(ep, errc::connect_failed);
}

} // namespace relay
