#include "tcp/tcp_listener.hpp"

#include <atomic>
#include <cerrno>
#include <mutex>
#include <unordered_map>

#include <sys/epoll.h>
#include <sys/socket.h>

#include "common/accept_util.hpp"
#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"
#include "relay/error.hpp"
#include "tcp/tcp_auth.hpp"
#include "tcp/tcp_socket.hpp"

namespace relay {

namespace {

class auth_session;

} // namespace

// Shared by the listener, its reactor registration and its sessions.
struct tcp_listener::state
  : std::enable_shared_from_this<tcp_listener::state> {
  std::weak_ptr<reactor> io;
  std::string uri;
  transport_options options;
  std::string secret; // empty: insecure mode, explicitly allowed
  accept_callback on_accept;
  rejection_counter rejected;
  unique_fd fd;
  std::atomic<reactor::token> token{0};
  std::atomic<bool> stopped{false};
  // Connections still authenticating, owned here until they finish.
  std::mutex sessions_mtx;
  std::unordered_map<auth_session*, std::shared_ptr<auth_session>> sessions;

  void on_readable();
  void reject(const caf::error& reason);
};

namespace {

// Authenticates one accepted connection on the reactor thread.
class auth_session : public std::enable_shared_from_this<auth_session> {
public:
  auth_session(std::shared_ptr<tcp_listener::state> owner, unique_fd fd,
               std::string peer)
    : owner_(std::move(owner)),
      fd_(std::move(fd)),
      peer_(std::move(peer)),
      hs_(tcp_auth::role::server, owner_->secret, peer_) {
    // nop
  }

  reactor::token token() const noexcept {
    return token_;
  }

  // Registers with the reactor and arms the deadline. Reactor thread.
  caf::error start(const std::shared_ptr<reactor>& io) {
    io_ = io;
    auto self = shared_from_this();
    auto id = io->add(fd_.get(), EPOLLIN | EPOLLOUT,
                      [self](uint32_t) { self->advance(); });
    if (!id)
      return id.error();
    token_ = *id;
    std::weak_ptr<auth_session> weak = self;
    io->dispatch_after(owner_->options.handshake_timeout, [weak] {
      if (auto s = weak.lock())
        s->fail(make_error(errc::handshake_timeout,
                           s->peer_ + ": did not complete authentication within "
                             + std::to_string(
                               s->owner_->options.handshake_timeout.count())
                             + " ms"));
    });
    return caf::none;
  }

private:
  using status = tcp_auth::handshake::status;

  void advance() {
    if (done_)
      return;
    for (;;) {
      if (auto err = send_output(fd_.get(), hs_)) {
        fail(make_errno_error(errc::connection_closed, peer_, err, "send"));
        return;
      }
      if (hs_.state() == status::failed) {
        fail(hs_.error());
        return;
      }
      if (hs_.state() == status::succeeded) {
        succeed();
        return;
      }
      if (!hs_.output().empty())
        break; // wait until writable
      uint8_t buf[64];
      auto n = ::recv(fd_.get(), buf, std::min(hs_.wanted(), sizeof(buf)),
                      MSG_DONTWAIT);
      if (n > 0) {
        hs_.feed(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) {
        fail(make_error(errc::connection_closed,
                        peer_ + ": closed the connection during "
                                "authentication"));
        return;
      }
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        fail(make_errno_error(errc::connection_closed, peer_, errno, "recv"));
        return;
      }
      break;
    }
    if (auto io = io_.lock())
      io->modify(token_, hs_.output().empty() ? EPOLLIN : EPOLLOUT);
  }

  // Leaves the reactor and the owner's table; the caller keeps us alive.
  std::shared_ptr<auth_session> detach() {
    done_ = true;
    if (auto io = io_.lock())
      io->remove(token_);
    std::lock_guard<std::mutex> guard{owner_->sessions_mtx};
    auto i = owner_->sessions.find(this);
    if (i == owner_->sessions.end())
      return nullptr; // the listener stopped
    auto self = std::move(i->second);
    owner_->sessions.erase(i);
    return self;
  }

  void succeed() {
    auto self = detach();
    auto io = io_.lock();
    if (!self || !io || owner_->stopped)
      return;
    owner_->on_accept(stream_connection::make(
      io, std::move(fd_), owner_->uri + " (" + peer_ + ")",
      owner_->options));
  }

  void fail(const caf::error& reason) {
    if (done_)
      return;
    auto self = detach();
    // Count and log first: whoever sees the close must see the count.
    if (self)
      owner_->reject(reason);
    send_output(fd_.get(), hs_); // a rejection, if the handshake has one
    fd_.reset();
  }

  std::shared_ptr<tcp_listener::state> owner_;
  unique_fd fd_;
  std::string peer_;
  tcp_auth::handshake hs_;
  std::weak_ptr<reactor> io_;
  reactor::token token_ = 0;
  bool done_ = false;
};

} // namespace

caf::expected<std::unique_ptr<tcp_listener>>
tcp_listener::make(std::shared_ptr<reactor> io, const tcp_address& addr,
                   const transport_options& options, accept_callback on_accept,
                   rejection_counter rejected) {
  auto uri = addr.uri();
  if (!on_accept)
    return make_error(errc::invalid_argument,
                      uri + ": listen needs an accept callback");
  auto secret = tcp_secret(options, uri);
  if (!secret)
    return secret.error();
  auto targets = resolve(addr, true, errc::listen_failed);
  if (!targets)
    return targets.error();
  auto& target = targets->front();
  auto st = std::make_shared<state>();
  st->io = io;
  st->options = options;
  st->secret = std::move(*secret);
  st->on_accept = std::move(on_accept);
  st->rejected = std::move(rejected);
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
  st->uri = "tcp://" + tcp_sockaddr::local_of(st->fd.get()).to_string();
  auto id = io->add(st->fd.get(), EPOLLIN, [st](uint32_t) {
    st->on_readable();
  });
  if (!id)
    return make_error(errc::listen_failed, uri + ": cannot watch the socket: "
                                             + describe(id.error()));
  st->token = *id;
  if (st->secret.empty())
    transport_log(st->uri + ": listening WITHOUT authentication "
                            "(relay.tcp-insecure): anyone who can reach this "
                            "port can talk to this node");
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
  decltype(state_->sessions) sessions;
  {
    std::lock_guard<std::mutex> guard{state_->sessions_mtx};
    sessions.swap(state_->sessions);
  }
  // Synchronous: once remove() returned, no session callback runs.
  for (auto& kvp : sessions)
    io_->remove(kvp.second->token());
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
    bool full;
    {
      std::lock_guard<std::mutex> guard{sessions_mtx};
      full = sessions.size() >= max_authenticating;
    }
    if (full) {
      reject(make_error(errc::peer_rejected,
                        peer + ": " + std::to_string(max_authenticating)
                          + " connections are authenticating already"));
      return;
    }
    if (auto err = set_tcp_options(conn.get(), errc::peer_rejected, peer)) {
      reject(err);
      return;
    }
    std::shared_ptr<auth_session> session;
    try {
      session = std::make_shared<auth_session>(shared_from_this(),
                                               std::move(conn), peer);
    } catch (std::exception& ex) {
      reject(make_error(errc::peer_rejected, peer + ": " + ex.what()));
      return;
    }
    {
      std::lock_guard<std::mutex> guard{sessions_mtx};
      sessions.emplace(session.get(), session);
    }
    if (auto err = session->start(io_ptr)) {
      std::lock_guard<std::mutex> guard{sessions_mtx};
      sessions.erase(session.get());
      reject(err);
    }
  });
}

void tcp_listener::state::reject(const caf::error& reason) {
  ++*rejected;
  transport_log(uri + ": closed an unauthenticated connection: "
                + describe(reason));
}

} // namespace relay
