#include "mq/mq_channel.hpp"

#include <mqueue.h>
#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/socket_util.hpp"
#include "relay/error.hpp"

namespace relay {

namespace {

// Tags of the descriptors in the channel's epoll set.
constexpr uint32_t tag_rx = 1;
constexpr uint32_t tag_tx = 2;
constexpr uint32_t tag_peer = 3;

// 0 (errno set) if the attributes cannot be read.
size_t message_size(int fd) {
  mq_attr attr{};
  if (::mq_getattr(fd, &attr) != 0)
    return 0;
  return static_cast<size_t>(attr.mq_msgsize);
}

// Sends the empty message that ends the stream: 0, or the errno.
int send_end(int tx) noexcept {
  int rc;
  do {
    rc = ::mq_send(tx, "", 0, 0);
  } while (rc < 0 && errno == EINTR);
  return rc == 0 ? 0 : errno;
}

bool exited(int pidfd) noexcept {
  if (pidfd < 0)
    return false;
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// Keeps trying to end the stream of a closed channel whose tx queue was
// full, until the peer reads or exits or the bound elapses.
struct pending_end {
  unique_fd tx;
  unique_fd peer;
  reactor::clock::time_point deadline;

  static void retry(std::weak_ptr<reactor> weak,
                    std::shared_ptr<pending_end> self) {
    auto io = weak.lock();
    if (!io || send_end(self->tx.get()) != EAGAIN || exited(self->peer.get())
        || reactor::clock::now() >= self->deadline)
      return; // the descriptors close with the last reference
    io->dispatch_after(std::chrono::milliseconds{20},
                       [weak, self] { retry(weak, self); });
  }
};

} // namespace

caf::expected<std::unique_ptr<mq_channel>>
mq_channel::make(unique_fd rx, unique_fd tx, unique_fd peer,
                 std::weak_ptr<reactor> io, const std::string& who) {
  unique_fd set{::epoll_create1(EPOLL_CLOEXEC)};
  if (!set)
    return make_errno_error(errc::connection_closed, who, errno,
                            "epoll_create1");
  auto add = [&](int fd, uint32_t events, uint32_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u32 = tag;
    return ::epoll_ctl(set.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  if (!add(rx.get(), 0, tag_rx) || !add(tx.get(), 0, tag_tx)
      || (peer && !add(peer.get(), EPOLLIN, tag_peer)))
    return make_errno_error(errc::connection_closed, who, errno,
                            "epoll_ctl on a message queue");
  auto rx_size = message_size(rx.get());
  auto tx_size = message_size(tx.get());
  if (rx_size == 0 || tx_size == 0)
    return make_errno_error(errc::connection_closed, who, errno,
                            "mq_getattr");
  return std::unique_ptr<mq_channel>{
    new mq_channel(std::move(rx), std::move(tx), std::move(peer),
                   std::move(set), rx_size, tx_size, std::move(io))};
}

mq_channel::mq_channel(unique_fd rx, unique_fd tx, unique_fd peer,
                       unique_fd set, size_t rx_size, size_t tx_size,
                       std::weak_ptr<reactor> io)
  : rx_(std::move(rx)),
    tx_(std::move(tx)),
    peer_(std::move(peer)),
    set_(std::move(set)),
    rx_size_(rx_size),
    tx_size_(tx_size),
    io_(std::move(io)),
    rx_stage_(rx_size) {
  // nop
}

mq_channel::~mq_channel() {
  // A connection closed without lingering (or whose end found the queue
  // full) still tells the peer, which has no other way to learn it while
  // this process lives.
  if (end_sent_ || peer_gone_ || violated_)
    return;
  if (send_end(tx_.get()) != EAGAIN)
    return;
  auto io = io_.lock();
  if (!io)
    return;
  auto pending = std::make_shared<pending_end>();
  pending->tx = std::move(tx_);
  pending->peer = std::move(peer_);
  pending->deadline = reactor::clock::now() + fin_retry_bound;
  std::weak_ptr<reactor> weak = io;
  io->dispatch_after(std::chrono::milliseconds{20},
                     [weak, pending] { pending_end::retry(weak, pending); });
}

ssize_t mq_channel::protocol_violation(std::string what) {
  {
    std::lock_guard<std::mutex> guard{violation_mtx_};
    if (violation_.empty())
      violation_ = std::move(what);
  }
  violated_ = true;
  errno = EPROTO;
  return -1;
}

std::string mq_channel::error_text(int err) const {
  if (err == EPROTO && violated_) {
    std::lock_guard<std::mutex> guard{violation_mtx_};
    return "message queue protocol violation: " + violation_;
  }
  if (err == ECONNRESET && peer_gone_)
    return "the peer's process exited without closing (killed or crashed)";
  return byte_channel::error_text(err);
}

// -- reading (reactor thread) -------------------------------------------------

ssize_t mq_channel::read(void* buf, size_t len) {
  if (violated_) {
    errno = EPROTO;
    return -1;
  }
  // Only a death seen before the queue was found empty means that nothing
  // more can come.
  bool gone = peer_gone_;
  auto* out = static_cast<char*>(buf);
  size_t got = 0;
  if (stage_begin_ < stage_end_) {
    got = std::min(len, stage_end_ - stage_begin_);
    std::memcpy(out, rx_stage_.data() + stage_begin_, got);
    stage_begin_ += got;
    if (stage_begin_ < stage_end_)
      return static_cast<ssize_t>(got);
  }
  while (got < len && !end_received_) {
    bool direct = len - got >= rx_size_;
    auto* dst = direct ? out + got : rx_stage_.data();
    unsigned prio = 0;
    ssize_t n;
    do {
      n = ::mq_receive(rx_.get(), dst, rx_size_, &prio);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN)
        break;
      if (got > 0)
        break; // reported by the next call
      return -1;
    }
    if (prio != 0) {
      auto err = protocol_violation("a message with priority "
                                    + std::to_string(prio)
                                    + " (Relay sends 0)");
      // What came before it is delivered; the next call fails.
      return got > 0 ? static_cast<ssize_t>(got) : err;
    }
    if (n == 0) {
      end_received_ = true;
      break;
    }
    if (direct) {
      got += static_cast<size_t>(n);
      continue;
    }
    auto take = std::min(static_cast<size_t>(n), len - got);
    std::memcpy(out + got, rx_stage_.data(), take);
    got += take;
    stage_begin_ = take;
    stage_end_ = static_cast<size_t>(n);
    break;
  }
  if (got > 0)
    return static_cast<ssize_t>(got);
  if (end_received_) {
    // The end is EOF; anything after it is a violation.
    unsigned prio = 0;
    if (::mq_receive(rx_.get(), rx_stage_.data(), rx_size_, &prio) < 0) {
      end_reported_ = true;
      return 0;
    }
    return protocol_violation("a message after the end of the stream");
  }
  if (gone) {
    // Not an orderly end: the process is gone (error_text says so).
    errno = ECONNRESET;
    return -1;
  }
  errno = EAGAIN;
  return -1;
}

bool mq_channel::poll_more() {
  return stage_begin_ < stage_end_ || (end_received_ && !end_reported_);
}

uint32_t mq_channel::on_ready(uint32_t) noexcept {
  epoll_event evs[3];
  int n;
  do {
    n = ::epoll_wait(set_.get(), evs, 3, 0);
  } while (n < 0 && errno == EINTR);
  // What read() holds is readable whatever the queue shows: the
  // connection calls us with EPOLLIN itself to get it (after a pause, for
  // a further turn).
  uint32_t result = poll_more() ? uint32_t{EPOLLIN} : 0u;
  for (int i = 0; i < n; ++i) {
    switch (evs[i].data.u32) {
      case tag_rx:
        result |= EPOLLIN;
        break;
      case tag_tx:
        result |= EPOLLOUT;
        break;
      case tag_peer:
        peer_gone_ = true;
        result |= EPOLLIN | EPOLLOUT;
        break;
    }
  }
  return result;
}

uint32_t mq_channel::watch(uint32_t wanted) noexcept {
  auto want = wanted & (EPOLLIN | EPOLLOUT);
  auto update = [&](int fd, uint32_t bit, uint32_t tag) {
    if ((want & bit) == (watched_ & bit))
      return;
    epoll_event ev{};
    ev.events = want & bit;
    ev.data.u32 = tag;
    // Fails only without memory; then the queue stays as it was watched and
    // the node's heartbeat bounds the damage.
    ::epoll_ctl(set_.get(), EPOLL_CTL_MOD, fd, &ev);
  };
  update(rx_.get(), EPOLLIN, tag_rx);
  update(tx_.get(), EPOLLOUT, tag_tx);
  watched_ = want;
  // The set is readable whenever a member is ready for what it watches;
  // with nothing wanted it is not watched at all (the pidfd would keep it
  // ready: a paused connection learns of a death when it resumes).
  return want != 0 ? uint32_t{EPOLLIN} : 0u;
}

// -- writing (under the connection's lock) --------------------------------------

ssize_t mq_channel::write(const iovec* iov, size_t count) {
  if (violated_) {
    errno = EPROTO;
    return -1;
  }
  if (peer_gone_ || end_sent_) {
    errno = EPIPE;
    return -1;
  }
  size_t total = 0;
  for (size_t i = 0; i < count; ++i)
    total += iov[i].iov_len;
  size_t written = 0;
  size_t vec = 0;    // iovec the next message starts in
  size_t in_vec = 0; // bytes of it already sent
  while (written < total) {
    while (iov[vec].iov_len == in_vec) {
      ++vec;
      in_vec = 0;
    }
    auto chunk = std::min(tx_size_, total - written);
    const char* src;
    if (iov[vec].iov_len - in_vec >= chunk) {
      src = static_cast<const char*>(iov[vec].iov_base) + in_vec;
    } else {
      // Gather the message from several iovecs.
      tx_stage_.resize(tx_size_);
      size_t v = vec;
      size_t off = in_vec;
      for (size_t copied = 0; copied < chunk;) {
        auto take = std::min(iov[v].iov_len - off, chunk - copied);
        std::memcpy(tx_stage_.data() + copied,
                    static_cast<const char*>(iov[v].iov_base) + off, take);
        copied += take;
        off += take;
        if (off == iov[v].iov_len) {
          ++v;
          off = 0;
        }
      }
      src = tx_stage_.data();
    }
    int rc;
    do {
      rc = ::mq_send(tx_.get(), src, chunk, 0);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      if (written > 0)
        break; // EAGAIN or an error the next call reports
      return -1;
    }
    written += chunk;
    // Advance past the message.
    for (auto left = chunk; left > 0;) {
      auto take = std::min(iov[vec].iov_len - in_vec, left);
      in_vec += take;
      left -= take;
      if (in_vec == iov[vec].iov_len && left > 0) {
        ++vec;
        in_vec = 0;
      }
    }
  }
  return static_cast<ssize_t>(written);
}

bool mq_channel::shutdown_write() {
  if (send_end(tx_.get()) != 0)
    return false; // full or broken: the destructor tries again
  end_sent_ = true;
  return true;
}

} // namespace relay
