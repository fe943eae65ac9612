#include "mq/mq_transport.hpp"

#include <mqueue.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include <caf/make_config_option.hpp>

#include "common/stream_connection.hpp"
#include "mq/mq_channel.hpp"

namespace relay {

namespace {

using std::chrono::steady_clock;

// What a listener's reactor callback needs.
struct accept_state {
  mq::address addr;
  std::string uri;
  unique_fd queue;
  std::weak_ptr<reactor> io;
  transport_options options;
  accept_callback on_accept;
  rejection_counter rejected;
  /// Set first by the acceptor's destructor: a callback already running
  /// (the destructor may run inside on_accept) takes no more requests.
  std::atomic<bool> stopped{false};
};

// Receives one message of at most `size` bytes, waiting until `deadline`.
// Returns bytes received, or -1 with errno (ETIMEDOUT at the deadline).
ssize_t receive_until(int fd, char* buf, size_t size,
                      steady_clock::time_point deadline) {
  for (;;) {
    unsigned prio = 0;
    auto n = ::mq_receive(fd, buf, size, &prio);
    if (n >= 0 || (errno != EAGAIN && errno != EINTR))
      return n;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - steady_clock::now());
    if (left.count() <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, poll_timeout(left));
  }
}

// Sends one message, waiting for room until `deadline`: 0 or the errno
// (ETIMEDOUT at the deadline).
int send_until(int fd, const void* data, size_t len,
               steady_clock::time_point deadline) {
  for (;;) {
    if (::mq_send(fd, static_cast<const char*>(data), len, 0) == 0)
      return 0;
    if (errno != EAGAIN && errno != EINTR)
      return errno;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - steady_clock::now());
    if (left.count() <= 0)
      return ETIMEDOUT;
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, poll_timeout(left));
  }
}

bool same_queue(int fd, const std::string& name) {
  auto other = ::mq_open(name.c_str(), O_RDONLY | O_NONBLOCK);
  if (other < 0)
    return false;
  struct stat a{};
  struct stat b{};
  auto same = ::fstat(fd, &a) == 0 && ::fstat(other, &b) == 0
              && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
  ::close(other);
  return same;
}

// Handles one request from the accept queue (reactor thread).
void serve_request(accept_state& st, const uint8_t* data, size_t len) {
  auto refuse = [&](const std::string& who, const std::string& why) {
    ++*st.rejected;
    transport_log(st.uri + ": refused " + who + ": " + why);
  };
  mq::request req;
  if (auto why = mq::read_request(data, len, req); !why.empty()) {
    refuse("a connection request", why);
    return;
  }
  auto who = st.uri + " (pid " + std::to_string(req.pid) + ")";
  auto up_name = st.addr.up(req.pid, req.token);
  auto down_name = st.addr.down(req.pid, req.token);
  auto up = mq::open_queue(up_name, true, false, errc::peer_rejected, who);
  auto down = mq::open_queue(down_name, false, false, errc::peer_rejected,
                             who);
  // Both sides have the queues open now (or never will): the names go,
  // so a crash of either side leaves nothing behind. They can only name a
  // pair of this listener ('@' is in no listener's name).
  mq::unlink_queue(up_name);
  mq::unlink_queue(down_name);
  // The answer goes to a descriptor of its own, so that it can still be
  // sent when building the channel (which takes .dn) fails.
  unique_fd reply_to{down ? ::dup(down->get()) : -1};
  auto answer = [&](bool accepted) {
    uint8_t rep[mq::reply_size];
    mq::write_reply({accepted, static_cast<uint32_t>(::getpid())}, rep);
    return reply_to
           && ::mq_send(reply_to.get(), reinterpret_cast<char*>(rep),
                        sizeof(rep), 0)
                == 0;
  };
  if (!up || !down) {
    answer(false);
    refuse("a connection request", describe(up ? down.error() : up.error()));
    return;
  }
  unique_fd peer;
  if (req.pid != static_cast<uint32_t>(::getpid())) {
    peer = mq::open_pidfd(static_cast<pid_t>(req.pid));
    if (!peer) {
      auto err = errno;
      answer(false);
      refuse(who, err == ESRCH
                    ? std::string{"its process is gone"}
                    : std::string{"cannot watch its process (pidfd_open, "
                                  "Linux 5.3 or later): "}
                        + std::strerror(err));
      return;
    }
  }
  auto io = st.io.lock();
  if (!io)
    return;
  // Everything that can fail comes before "accepted": a client is never
  // told yes for a connection nobody serves.
  auto chan = mq_channel::make(std::move(*up), std::move(*down),
                               std::move(peer), io, who);
  if (!chan || !reply_to) {
    answer(false);
    refuse(who, chan ? std::string{"dup: "} + std::strerror(errno)
                     : describe(chan.error()));
    return;
  }
  if (!answer(true)) {
    refuse(who, std::string{"cannot answer on "} + down_name + ": "
                  + std::strerror(errno));
    return;
  }
  st.on_accept(stream_connection::make(io, std::move(*chan), who, st.options));
}

// Takes the requests waiting in the accept queue (reactor thread). A
// bounded number per event, so that a flood cannot starve other
// descriptors; level-triggered epoll brings us back.
void serve_queue(accept_state& st) {
  for (int i = 0; i < 64 && !st.stopped; ++i) {
    char buf[mq::accept_message_size];
    unsigned prio = 0;
    auto n = ::mq_receive(st.queue.get(), buf, sizeof(buf), &prio);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR)
        transport_log(st.uri + ": reading the accept queue: "
                      + std::strerror(errno));
      return;
    }
    serve_request(st, reinterpret_cast<const uint8_t*>(buf),
                  static_cast<size_t>(n));
  }
}

class mq_listener : public acceptor {
public:
  mq_listener(std::shared_ptr<reactor> io, std::shared_ptr<accept_state> st,
              reactor::token token)
    : io_(std::move(io)), st_(std::move(st)), token_(token) {
    // nop
  }

  ~mq_listener() override {
    st_->stopped = true;
    io_->remove(token_);
    // A listener that took over our name after a crash would hold another
    // queue under it: unlink only our own.
    if (same_queue(st_->queue.get(), st_->addr.name))
      mq::unlink_queue(st_->addr.name);
  }

  std::string uri() const override {
    return st_->uri;
  }

private:
  std::shared_ptr<reactor> io_;
  std::shared_ptr<accept_state> st_;
  reactor::token token_;
};

// Takes LOCK_EX on `fd`, trying for a moment: a client's liveness probe
// holds LOCK_SH for microseconds. False with errno (EWOULDBLOCK: another
// listener holds it).
bool lock_exclusive(int fd) {
  auto deadline = steady_clock::now() + std::chrono::milliseconds{200};
  for (;;) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0)
      return true;
    if (errno != EWOULDBLOCK && errno != EINTR)
      return false;
    if (steady_clock::now() >= deadline) {
      errno = EWOULDBLOCK;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
}

// Creates the accept queue, or takes over one whose listener is gone (no
// lock on it), and locks it. Errors name `uri`.
caf::expected<unique_fd> claim_accept_queue(const mq::address& addr,
                                            const std::string& uri) {
  mq::geometry g{mq::accept_message_size, mq::accept_depth};
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto created = mq::create_queue(addr.name, g, true, errc::listen_failed,
                                    uri);
    unique_fd fd;
    if (created) {
      fd = std::move(*created);
    } else if (errno != EEXIST) {
      return created.error(); // a limit, named in the error
    } else {
      auto raw = ::mq_open(addr.name.c_str(), O_RDONLY | O_NONBLOCK);
      if (raw < 0) {
        auto err = errno;
        if (err == ENOENT)
          continue; // gone meanwhile: create again
        if (err == EACCES)
          return make_error(errc::listen_failed,
                            uri + ": message queue " + addr.name
                              + " exists and belongs to another user");
        return make_errno_error(errc::listen_failed, uri, err,
                                "opening message queue " + addr.name);
      }
      fd = unique_fd{raw};
    }
    // Never unlink a name we could not lock: whoever holds it serves it
    // (possibly a listener that took over the queue we just created).
    if (!lock_exclusive(fd.get())) {
      if (errno == EWOULDBLOCK)
        return make_error(errc::listen_failed,
                          uri + ": another listener serves this queue");
      return make_errno_error(errc::listen_failed, uri, errno,
                              "locking message queue " + addr.name);
    }
    // Locked, but the name may have gone or been replaced between the open
    // and the lock (its listener shut down): then start over.
    if (!same_queue(fd.get(), addr.name))
      continue;
    if (auto why = mq::check_queue(fd.get(), true); !why.empty()) {
      if (why.rfind("owned by", 0) == 0 || why.rfind("open to", 0) == 0)
        return make_error(errc::listen_failed, uri + ": message queue "
                                                 + addr.name + " is " + why);
      // Left by a listener of another version, and locked by us: replace
      // it.
      mq::unlink_queue(addr.name);
      continue;
    }
    if (!created) {
      // Left by a listener that died: requests in it came from clients
      // that have given up by now or will be answered; serve it.
      transport_log(uri + ": took over message queue " + addr.name
                    + " from a listener that exited");
    }
    return fd;
  }
  return make_error(errc::listen_failed,
                    uri + ": message queue " + addr.name
                      + " keeps changing under us");
}

} // namespace

caf::expected<mq_transport::settings>
mq_transport::settings::read(const transport_options& options) {
  settings result;
  auto& g = result.geometry;
  if (options.settings != nullptr) {
    g.message_size = static_cast<long>(caf::get_or(
      *options.settings, "relay.mq.message-size", size_t{8192}));
    g.depth = static_cast<long>(
      caf::get_or(*options.settings, "relay.mq.max-messages", size_t{10}));
  }
  if (g.message_size < mq::min_message_size
      || g.message_size > mq::max_message_size)
    return make_error(errc::invalid_argument,
                      "relay.mq.message-size " + std::to_string(g.message_size)
                        + " is outside [128, 1048576]");
  if (g.depth < 1 || g.depth > mq::max_depth)
    return make_error(errc::invalid_argument,
                      "relay.mq.max-messages " + std::to_string(g.depth)
                        + " is outside [1, 65536]");
  return result;
}

void mq_transport::declare_options(const option_declarer& declare) {
  declare("relay.mq")
    .add<size_t>("message-size",
                 "bytes per POSIX queue message (128 to 1 MiB; 8192)")
    .add<size_t>("max-messages", "messages each mq queue holds (10)");
}

mq_transport::mq_transport(std::shared_ptr<reactor> io,
                           transport_options options)
  : io_(std::move(io)),
    options_(std::move(options)),
    settings_(settings::read(options_)) {
  // nop
}

std::string mq_transport::scheme() const {
  return scheme_name;
}

caf::expected<std::unique_ptr<acceptor>>
mq_transport::listen(const endpoint& ep, accept_callback on_accept) {
  if (!on_accept)
    return make_error(errc::invalid_argument,
                      ep.text + ": listen needs an accept callback");
  auto addr = mq::address::parse(ep);
  if (!addr)
    return addr.error();
  if (!settings_)
    return settings_.error();
  auto uri = addr->uri();
  auto queue = claim_accept_queue(*addr, uri);
  if (!queue)
    return queue.error();
  auto st = std::make_shared<accept_state>();
  st->addr = *addr;
  st->uri = uri;
  st->queue = std::move(*queue);
  st->io = io_;
  st->options = options_;
  st->on_accept = std::move(on_accept);
  st->rejected = rejected_;
  auto fd = st->queue.get();
  auto token = io_->add(fd, EPOLLIN, [st](uint32_t) { serve_queue(*st); });
  if (!token) {
    mq::unlink_queue(addr->name);
    return make_error(errc::listen_failed,
                      uri + ": cannot watch the accept queue: "
                        + describe(token.error()));
  }
  return std::unique_ptr<acceptor>{new mq_listener(io_, std::move(st),
                                                   *token)};
}

caf::expected<mq_client> mq_connect_channel(const mq::address& addr,
                                            mq::geometry geometry,
                                            const transport_options& options,
                                            std::weak_ptr<reactor> io) {
  auto uri = addr.uri();
  auto deadline = steady_clock::now() + options.handshake_timeout;
  // The listener's queue: ours, and alive.
  auto raw = ::mq_open(addr.name.c_str(), O_WRONLY | O_NONBLOCK);
  if (raw < 0) {
    auto err = errno;
    if (err == ENOENT)
      return make_error(errc::connect_failed,
                        uri + ": nobody listens (no message queue "
                          + addr.name + ")");
    if (err == EACCES)
      return make_error(errc::peer_rejected,
                        uri + ": message queue " + addr.name
                          + " belongs to another user");
    return make_errno_error(errc::connect_failed, uri, err,
                            "opening message queue " + addr.name);
  }
  unique_fd accept_queue{raw};
  if (auto why = mq::check_queue(raw, true); !why.empty())
    return make_error(errc::peer_rejected,
                      uri + ": message queue " + addr.name + " is " + why);
  if (::flock(raw, LOCK_SH | LOCK_NB) == 0)
    return make_error(errc::connect_failed,
                      uri + ": nobody listens (message queue " + addr.name
                        + " is left from a listener that exited)");
  // Room for the request first, so that the pair below exists only for
  // the moment between its creation and the request (a crash then leaves
  // its names behind; see docs/mq.md).
  {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - steady_clock::now());
    pollfd p{raw, POLLOUT, 0};
    if (::poll(&p, 1, poll_timeout(left)) == 0)
      return make_error(errc::handshake_timeout,
                        uri + ": the listener's accept queue stayed full");
  }
  // Our pair. Whatever happens, the names go when we return: on success
  // the listener has unlinked them already.
  auto pid = static_cast<uint32_t>(::getpid());
  auto token = mq::random_token();
  auto up_name = addr.up(pid, token);
  auto down_name = addr.down(pid, token);
  auto up = mq::create_queue(up_name, geometry, false,
                             errc::connect_failed, uri);
  if (!up)
    return up.error();
  struct unlink_guard {
    std::string up, down;
    ~unlink_guard() {
      mq::unlink_queue(up);
      mq::unlink_queue(down);
    }
  } guard{up_name, down_name};
  auto down = mq::create_queue(down_name, geometry, true,
                               errc::connect_failed, uri);
  if (!down)
    return down.error();
  uint8_t req[mq::request_size];
  mq::write_request({pid, token}, req);
  if (auto err = send_until(raw, req, sizeof(req), deadline); err != 0) {
    if (err == ETIMEDOUT)
      return make_error(errc::handshake_timeout,
                        uri + ": the listener's accept queue stayed full");
    return make_errno_error(errc::connect_failed, uri, err,
                            "sending the connection request");
  }
  std::vector<char> buf(static_cast<size_t>(geometry.message_size));
  auto n = receive_until(down->get(), buf.data(), buf.size(), deadline);
  if (n < 0) {
    if (errno == ETIMEDOUT)
      return make_error(errc::handshake_timeout,
                        uri + ": the listener did not answer in time");
    return make_errno_error(errc::connect_failed, uri, errno,
                            "receiving the answer");
  }
  mq::reply rep;
  if (auto why = mq::read_reply(reinterpret_cast<const uint8_t*>(buf.data()),
                                static_cast<size_t>(n), rep);
      !why.empty())
    return make_error(why.find("version") != std::string::npos
                        ? errc::version_mismatch
                        : errc::handshake_failed,
                      uri + ": " + why);
  if (!rep.accepted)
    return make_error(errc::peer_rejected,
                      uri + ": the listener refused the connection (its log "
                            "says why)");
  auto who = uri + " (pid " + std::to_string(rep.pid) + ")";
  // Accepted: a failure from here on ends the listener's side at once (an
  // empty message) instead of leaving it to the heartbeat.
  auto give_up = [&](caf::error err) {
    ::mq_send(up->get(), "", 0, 0);
    return err;
  };
  unique_fd peer;
  if (rep.pid != pid) {
    peer = mq::open_pidfd(static_cast<pid_t>(rep.pid));
    if (!peer)
      return give_up(make_errno_error(errc::connect_failed, who, errno,
                                      "watching the listener's process "
                                      "(pidfd_open, Linux 5.3 or later)"));
  }
  unique_fd end_to{::dup(up->get())};
  auto chan = mq_channel::make(std::move(*down), std::move(*up),
                               std::move(peer), std::move(io), who);
  if (!chan) {
    ::mq_send(end_to.get(), "", 0, 0);
    return chan.error();
  }
  return mq_client{std::move(*chan), who};
}

caf::expected<connection_ptr> mq_transport::connect(const endpoint& ep) {
  auto addr = mq::address::parse(ep);
  if (!addr)
    return addr.error();
  if (!settings_)
    return settings_.error();
  auto client = mq_connect_channel(*addr, settings_->geometry, options_, io_);
  if (!client)
    return client.error();
  return stream_connection::make(io_, std::move(client->channel),
                                 std::move(client->name), options_);
}

uint64_t mq_transport::rejected_peers() const noexcept {
  return *rejected_;
}

} // namespace relay
