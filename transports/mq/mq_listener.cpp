#include "mq/mq_listener.hpp"

#include <mqueue.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

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

caf::expected<std::unique_ptr<acceptor>>
mq_listen(const std::shared_ptr<reactor>& io, const mq::address& addr,
          const transport_options& options, accept_callback on_accept,
          rejection_counter rejected) {
  auto uri = addr.uri();
  auto queue = claim_accept_queue(addr, uri);
  if (!queue)
    return queue.error();
  auto st = std::make_shared<accept_state>();
  st->addr = addr;
  st->uri = uri;
  st->queue = std::move(*queue);
  st->io = io;
  st->options = options;
  st->on_accept = std::move(on_accept);
  st->rejected = rejected;
  auto fd = st->queue.get();
  auto token = io->add(fd, EPOLLIN, [st](uint32_t) { serve_queue(*st); });
  if (!token) {
    mq::unlink_queue(addr.name);
    return make_error(errc::listen_failed,
                      uri + ": cannot watch the accept queue: "
                        + describe(token.error()));
  }
  return std::unique_ptr<acceptor>{new mq_listener(io, std::move(st),
                                                   *token)};
}

} // namespace relay
