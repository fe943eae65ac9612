#include "uds/uds_listener.hpp"

#include <atomic>
#include <cerrno>
#include <utility>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/accept_util.hpp"
#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"
#include "common/transport_log.hpp"
#include "relay/error.hpp"
#include "uds/uds_peer.hpp"

namespace relay {

// Shared by the listener and its reactor registration.
struct uds_listener::state {
  std::weak_ptr<reactor> io;
  uds_address addr;
  std::string uri;
  transport_options options;
  uds_socket_callback on_socket;
  rejection_counter rejected;
  unique_fd fd;
  // The socket file we created, to remove only that one.
  bool owns_file = false;
  dev_t file_dev = 0;
  ino_t file_ino = 0;
  std::atomic<reactor::token> token{0};
  std::atomic<bool> stopped{false};

  void on_readable();
  void remove_file();
};

namespace {

caf::error listen_error(const std::string& uri, const std::string& why) {
  return make_error(errc::listen_failed, uri + ": " + why);
}

// Makes room for binding a path: an existing socket file nobody listens on
// is stale and goes; anything else stays and is an error.
caf::error clear_stale_socket(const uds_address& addr, const std::string& uri) {
  struct stat st{};
  if (::lstat(addr.name.c_str(), &st) < 0) {
    if (errno == ENOENT)
      return caf::none;
    return make_errno_error(errc::listen_failed, uri, errno,
                            "cannot inspect the socket path");
  }
  if (!S_ISSOCK(st.st_mode))
    return listen_error(uri, "path exists and is not a socket (left as is)");
  unique_fd probe{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                           0)};
  if (!probe)
    return make_errno_error(errc::listen_failed, uri, errno, "socket");
  sockaddr_un sa;
  auto len = addr.to_sockaddr(sa);
  int rc;
  do {
    rc = ::connect(probe.get(), reinterpret_cast<sockaddr*>(&sa), len);
  } while (rc < 0 && errno == EINTR);
  // EAGAIN: a listener with a full backlog, alive all the same.
  if (rc == 0 || errno == EAGAIN)
    return listen_error(uri, "already in use by a live listener");
  if (errno == ENOENT)
    return caf::none; // vanished meanwhile
  if (errno != ECONNREFUSED)
    return make_errno_error(errc::listen_failed, uri, errno,
                            "cannot probe the existing socket file");
  if (::unlink(addr.name.c_str()) < 0 && errno != ENOENT)
    return make_errno_error(errc::listen_failed, uri, errno,
                            "cannot remove the stale socket file");
  return caf::none;
}

} // namespace

caf::expected<std::unique_ptr<uds_listener>>
uds_listener::make(std::shared_ptr<reactor> io, const uds_address& addr,
                   const transport_options& options,
                   uds_socket_callback on_socket, rejection_counter rejected) {
  auto uri = addr.uri();
  if (!on_socket)
    return make_error(errc::invalid_argument,
                      uri + ": listen needs an accept callback");
  auto st = std::make_shared<state>();
  st->io = io;
  st->addr = addr;
  st->uri = uri;
  st->options = options;
  st->on_socket = std::move(on_socket);
  st->rejected = std::move(rejected);
  st->fd.reset(
    ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!st->fd)
    return make_errno_error(errc::listen_failed, uri, errno, "socket");
  if (!addr.abstract) {
    if (auto err = clear_stale_socket(addr, uri))
      return err;
    // Linux creates the socket file with the socket inode's mode minus the
    // umask, so the file never exists with wider permissions.
    if (::fchmod(st->fd.get(), socket_file_mode) < 0)
      return make_errno_error(errc::listen_failed, uri, errno, "fchmod");
  }
  sockaddr_un sa;
  auto len = addr.to_sockaddr(sa);
  if (::bind(st->fd.get(), reinterpret_cast<sockaddr*>(&sa), len) < 0) {
    if (errno == EADDRINUSE)
      return listen_error(uri, "already in use by a live listener");
    return make_errno_error(errc::listen_failed, uri, errno, "bind");
  }
  if (!addr.abstract) {
    // From here on, a failure removes the file we just created.
    struct stat file{};
    if (::lstat(addr.name.c_str(), &file) < 0)
      return make_errno_error(errc::listen_failed, uri, errno,
                              "cannot inspect the new socket file");
    st->owns_file = true;
    st->file_dev = file.st_dev;
    st->file_ino = file.st_ino;
    // No peer can connect before listen(), so fixing the mode here is safe.
    if ((file.st_mode & 07777) != socket_file_mode
        && ::chmod(addr.name.c_str(), socket_file_mode) < 0) {
      auto err = make_errno_error(errc::listen_failed, uri, errno, "chmod");
      st->remove_file();
      return err;
    }
  }
  if (::listen(st->fd.get(), backlog) < 0) {
    auto err = make_errno_error(errc::listen_failed, uri, errno, "listen");
    st->remove_file();
    return err;
  }
  auto id = io->add(st->fd.get(), EPOLLIN, [st](uint32_t) {
    st->on_readable();
  });
  if (!id) {
    st->remove_file();
    return make_error(errc::listen_failed,
                      uri + ": cannot watch the socket: " + describe(id.error()));
  }
  st->token = *id;
  return std::make_unique<uds_listener>(std::move(io), std::move(st));
}

caf::expected<std::unique_ptr<uds_listener>>
uds_listener::make_stream(std::shared_ptr<reactor> io, const uds_address& addr,
                          const transport_options& options,
                          accept_callback on_accept,
                          rejection_counter rejected) {
  if (!on_accept)
    return make_error(errc::invalid_argument,
                      addr.uri() + ": listen needs an accept callback");
  std::weak_ptr<reactor> weak_io = io;
  return make(std::move(io), addr, options,
              [weak_io, options, on_accept](unique_fd fd, std::string peer) {
                if (auto io = weak_io.lock())
                  on_accept(stream_connection::make(
                    io,
                    std::make_unique<socket_channel>(std::move(fd), true),
                    std::move(peer), options));
              },
              std::move(rejected));
}

uds_listener::uds_listener(std::shared_ptr<reactor> io,
                           std::shared_ptr<state> st)
  : io_(std::move(io)), state_(std::move(st)) {
  // nop
}

uds_listener::~uds_listener() {
  // Synchronous: once remove() returned, no accept callback runs.
  io_->remove(state_->token);
  state_->stopped = true;
  state_->fd.reset();
  state_->remove_file();
}

std::string uds_listener::uri() const {
  return state_->uri;
}

// -- state (reactor thread) ---------------------------------------------------

void uds_listener::state::on_readable() {
  auto io_ptr = io.lock();
  if (!io_ptr)
    return;
  accept_pending(io_ptr, fd.get(), token, stopped, uri, [&](unique_fd conn) {
    auto peer = uds_peer::of(conn.get(), errc::peer_rejected, uri);
    if (!peer) {
      ++*rejected;
      transport_log(uri + ": rejected a peer: " + describe(peer.error()));
      return;
    }
    if (auto why = peer->check_uid(options); !why.empty()) {
      ++*rejected;
      transport_log(uri + ": rejected peer pid " + std::to_string(peer->pid)
                    + " uid " + std::to_string(peer->uid) + ": " + why);
      return;
    }
    on_socket(std::move(conn), peer->describe(uri));
  });
}

void uds_listener::state::remove_file() {
  if (!owns_file)
    return;
  owns_file = false;
  // Only if the path still names our socket: someone may have replaced it.
  struct stat st{};
  if (::lstat(addr.name.c_str(), &st) == 0 && st.st_dev == file_dev
      && st.st_ino == file_ino)
    ::unlink(addr.name.c_str());
}

} // namespace relay
