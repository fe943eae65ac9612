#include "common/setup_session.hpp"

#include <sys/epoll.h>

#include <exception>

#include "relay/error.hpp"

namespace relay {

class setup_sessions::session
  : public std::enable_shared_from_this<setup_sessions::session> {
public:
  session(std::weak_ptr<setup_sessions> owner, unique_fd fd, std::string peer,
          step_fn step, done_fn done)
    : owner_(std::move(owner)),
      fd_(std::move(fd)),
      peer_(std::move(peer)),
      step_(std::move(step)),
      done_(std::move(done)) {
    // nop
  }

  reactor::token token() const noexcept {
    return token_;
  }

  caf::error start(const std::shared_ptr<reactor>& io,
                   std::chrono::milliseconds timeout) {
    io_ = io;
    auto self = shared_from_this();
    auto id = io->add(fd_.get(), EPOLLIN, [self](uint32_t) { self->advance(); });
    if (!id)
      return id.error();
    token_ = *id;
    std::weak_ptr<session> weak = self;
    io->dispatch_after(timeout, [weak, timeout] {
      if (auto s = weak.lock())
        s->fail(make_error(errc::handshake_timeout,
                           s->peer_ + ": did not complete the set-up within "
                             + std::to_string(timeout.count()) + " ms"));
    });
    // The peer may have spoken first; a step also sends our opening words.
    io->dispatch([weak] {
      if (auto s = weak.lock())
        s->advance();
    });
    return caf::none;
  }

  void advance() {
    if (finished_)
      return;
    setup_status status;
    try {
      status = step_(fd_.get());
    } catch (std::exception& ex) { // e.g. libcrypto failing: refuse, go on
      fail(make_error(errc::peer_rejected, peer_ + ": " + ex.what()));
      return;
    }
    switch (status.st) {
      case setup_status::state::waiting:
        if (auto io = io_.lock())
          io->modify(token_, status.events);
        return;
      case setup_status::state::done:
        finish_with([this] { done_(std::move(fd_)); });
        return;
      case setup_status::state::failed:
        fail(status.error);
        return;
    }
  }

  void fail(const caf::error& reason) {
    if (finished_)
      return;
    finish_with([&] {
      // Count and log first: whoever sees the close must see the count.
      if (auto owner = owner_.lock())
        owner->reject(reason);
      fd_.reset();
    });
  }

private:
  template <class F>
  void finish_with(F f) {
    finished_ = true;
    auto keep = shared_from_this();
    if (auto io = io_.lock())
      io->remove(token_);
    auto owner = owner_.lock();
    if (!owner)
      return;
    // Held while the callback runs, so that stop() can wait for it.
    std::lock_guard<std::recursive_mutex> running{owner->callback_mtx_};
    {
      std::lock_guard<std::mutex> guard{owner->mtx_};
      if (owner->stopped_)
        return;
      owner->sessions_.erase(this);
    }
    f();
  }

  std::weak_ptr<setup_sessions> owner_;
  unique_fd fd_;
  std::string peer_;
  step_fn step_;
  done_fn done_;
  std::weak_ptr<reactor> io_;
  reactor::token token_ = 0;
  bool finished_ = false;
};

setup_sessions::setup_sessions(std::weak_ptr<reactor> io, std::string uri,
                               std::string what,
                               std::chrono::milliseconds timeout,
                               rejection_counter rejected)
  : io_(std::move(io)),
    uri_(std::move(uri)),
    what_(std::move(what)),
    timeout_(timeout),
    rejected_(std::move(rejected)) {
  // nop
}

void setup_sessions::start(unique_fd fd, std::string peer, step_fn step,
                           done_fn done) {
  auto io = io_.lock();
  if (!io)
    return;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopped_)
      return;
    if (sessions_.size() >= max_pending) {
      reject(make_error(errc::peer_rejected,
                        peer + ": " + std::to_string(max_pending)
                          + " connections are in set-up already"));
      return;
    }
  }
  auto s = std::make_shared<session>(weak_from_this(), std::move(fd), peer,
                                     std::move(step), std::move(done));
  {
    std::lock_guard<std::mutex> guard{mtx_};
    sessions_.emplace(s.get(), s);
  }
  if (auto err = s->start(io, timeout_)) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      sessions_.erase(s.get());
    }
    reject(err);
  }
}

void setup_sessions::reject(const caf::error& reason) {
  ++*rejected_;
  transport_log(uri_ + ": closed " + what_ + ": " + describe(reason));
}

void setup_sessions::stop() {
  decltype(sessions_) sessions;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopped_ = true;
    sessions.swap(sessions_);
  }
  // Synchronous: once remove() returned, no step runs.
  if (auto io = io_.lock())
    for (auto& kvp : sessions)
      io->remove(kvp.second->token());
  // A set-up that finished just before may still be in its callback (it
  // already left the table): wait for it.
  std::lock_guard<std::recursive_mutex> wait{callback_mtx_};
}

} // namespace relay
