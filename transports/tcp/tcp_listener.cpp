#include "tcp/tcp_listener.hpp"

#include <atomic>
#include <cerrno>

#include <sys/epoll.h>
#include <sys/socket.h>

#include "common/accept_util.hpp"
#include "common/setup_session.hpp"
#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"
#include "relay/error.hpp"
#include "tcp/tcp_socket.hpp"

namespace relay {

// Shared by the listener and its reactor registration.
struct tcp_listener::state {
  std::weak_ptr<reactor> io;
  std::string uri;
  transport_options options;
  std::shared_ptr<tcp_layer> layer;
  accept_callback on_accept;
  std::shared_ptr<setup_sessions> sessions;
  unique_fd fd;
  std::atomic<reactor::token> token{0};
  std::atomic<bool> stopped{false};

  void on_readable();
};

caf::expected<std::unique_ptr<tcp_listener>>
tcp_listener::make(std::shared_ptr<reactor> io, const tcp_address& addr,
                   const transport_options& options,
                   std::shared_ptr<tcp_layer> layer, accept_callback on_accept,
                   rejection_counter rejected) {
  auto uri = addr.uri();
  if (!on_accept)
    return make_error(errc::invalid_argument,
                      uri + ": listen needs an accept callback");
  if (auto err = layer->prepare(uri))
    return err;
  auto targets = resolve(addr, true, errc::listen_failed);
  if (!targets)
    return targets.error();
  auto& target = targets->front();
  auto st = std::make_shared<state>();
  st->io = io;
  st->options = options;
  st->layer = std::move(layer);
  st->on_accept = std::move(on_accept);
  st->fd.reset(
    ::socket(target.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!st->fd)
    return make_errno_error(errc::listen_failed, uri, errno, "socket");
  int on = 1;
  ::setsockopt(st->fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (::bind(st->fd.get(), target.get(), target.length) < 0)
    return make_errno_error(errc::listen_failed, uri, errno,
                            errno == EADDRINUSE ? "address in use" : "bind");
  if (::listen(st->fd.get(), backlog) < 0)
    return make_errno_error(errc::listen_failed, uri, errno, "listen");
  st->uri = std::string{st->layer->scheme()} + "://"
            + tcp_sockaddr::local_of(st->fd.get()).to_string();
  st->sessions = std::make_shared<setup_sessions>(
    io, st->uri, "an unauthenticated connection", options.handshake_timeout,
    std::move(rejected));
  auto id = io->add(st->fd.get(), EPOLLIN, [st](uint32_t) {
    st->on_readable();
  });
  if (!id)
    return make_error(errc::listen_failed, uri + ": cannot watch the socket: "
                                             + describe(id.error()));
  st->token = *id;
  st->layer->listening(st->uri);
  return std::make_unique<tcp_listener>(std::move(io), std::move(st));
}

tcp_listener::tcp_listener(std::shared_ptr<reactor> io,
                           std::shared_ptr<state> st)
  : io_(std::move(io)), state_(std::move(st)) {
  // nop
}

tcp_listener::~tcp_listener() {
  io_->remove(state_->token);
  state_->stopped = true;
  state_->sessions->stop();
  state_->fd.reset();
}

std::string tcp_listener::uri() const {
  return state_->uri;
}

// -- state (reactor thread) ---------------------------------------------------

void tcp_listener::state::on_readable() {
  auto io_ptr = io.lock();
  if (!io_ptr)
    return;
  accept_pending(io_ptr, fd.get(), token, stopped, uri, [&](unique_fd conn) {
    auto peer = "peer " + tcp_sockaddr::peer_of(conn.get()).to_string();
    if (auto err = set_tcp_options(conn.get(), errc::peer_rejected, peer)) {
      sessions->reject(err);
      return;
    }
    auto setup = layer->accept(peer);
    if (!setup) {
      sessions->reject(setup.error());
      return;
    }
    std::weak_ptr<reactor> weak_io = io_ptr;
    sessions->start(
      std::move(conn), peer, std::move(setup->step),
      [weak_io, finish = std::move(setup->finish), on_accept = on_accept,
       options = options, name = uri + " (" + peer + ")"](unique_fd fd) {
        if (auto io = weak_io.lock())
          on_accept(stream_connection::make(io, finish(std::move(fd)), name,
                                            options));
      });
  });
}

} // namespace relay
