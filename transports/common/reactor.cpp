#include "common/reactor.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <future>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/socket_util.hpp"
#include "common/transport_log.hpp"
#include "relay/error.hpp"

namespace relay {

namespace {

// epoll data of the wake-up eventfd; registrations start at 1.
constexpr reactor::token wakeup_token = 0;

struct registration {
  int fd;
  reactor::io_callback callback;
};

struct timer {
  reactor::clock::time_point due;
  uint64_t seq; // keeps timers with equal deadlines in FIFO order
  std::function<void()> fn;
};

// Orders the timer heap so that the earliest deadline is on top.
struct fires_later {
  bool operator()(const timer& x, const timer& y) const noexcept {
    return x.due != y.due ? x.due > y.due : x.seq > y.seq;
  }
};

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

} // namespace

struct reactor::state {
  unique_fd epoll_fd;
  unique_fd wake_fd;
  std::atomic<std::thread::id> loop_id{};

  std::mutex mtx;
  // -- guarded by mtx ---------------------------------------------------------
  std::unordered_map<token, std::shared_ptr<registration>> entries;
  token next_token = wakeup_token + 1;
  std::vector<std::function<void()>> queue;
  std::vector<timer> timers; // a heap ordered by fires_later
  uint64_t next_timer_seq = 0;
  bool stopping = false;

  void wake() noexcept {
    uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop wakes anyway.
    while (::write(wake_fd.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
      // retry
    }
  }

  void drain_wake() noexcept {
    uint64_t count;
    while (::read(wake_fd.get(), &count, sizeof(count)) < 0 && errno == EINTR) {
      // retry
    }
  }

  // Queues `fn` unless stopping; returns whether it was queued.
  bool post(std::function<void()>& fn) {
    bool was_empty;
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (stopping)
        return false;
      was_empty = queue.empty();
      queue.push_back(std::move(fn));
    }
    if (was_empty)
      wake();
    return true;
  }

  void remove_now(token id) {
    std::shared_ptr<registration> victim;
    {
      std::lock_guard<std::mutex> guard{mtx};
      auto i = entries.find(id);
      if (i == entries.end())
        return;
      victim = std::move(i->second);
      entries.erase(i);
      // The owner keeps the fd open until remove() returned, so this cannot
      // hit a reused fd number; an error here would be an owner bug.
      ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, victim->fd, nullptr);
    }
    // `victim` dies here, outside the lock: its callback's destructor may
    // re-enter the reactor. If the callback is running (it removed itself),
    // the loop still holds a reference until the call returns.
  }

  int next_timeout_ms() {
    std::lock_guard<std::mutex> guard{mtx};
    if (!queue.empty())
      return 0;
    if (timers.empty())
      return -1;
    auto left = timers.front().due - clock::now();
    if (left <= clock::duration::zero())
      return 0;
    // Round up so that we never wake before the deadline and spin.
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<int>(std::min<decltype(ms)>(ms, 60 * 60 * 1000));
  }

  void run_due_timers() {
    std::vector<std::function<void()>> due;
    {
      std::lock_guard<std::mutex> guard{mtx};
      auto now = clock::now();
      while (!timers.empty() && timers.front().due <= now) {
        std::pop_heap(timers.begin(), timers.end(), fires_later{});
        due.push_back(std::move(timers.back().fn));
        timers.pop_back();
      }
    }
    for (auto& fn : due)
      fn();
  }

  void run_queue() {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard<std::mutex> guard{mtx};
      batch.swap(queue);
    }
    for (auto& fn : batch)
      fn();
  }

  void dispatch_events(const epoll_event* events, int count) {
    for (int i = 0; i < count; ++i) {
      auto id = events[i].data.u64;
      if (id == wakeup_token) {
        drain_wake();
        continue;
      }
      std::shared_ptr<registration> target;
      {
        std::lock_guard<std::mutex> guard{mtx};
        auto it = entries.find(id);
        if (it == entries.end())
          continue; // removed by an earlier callback of this batch
        target = it->second;
      }
      target->callback(events[i].events);
    }
  }

  void run() {
    epoll_event events[max_events_per_wait];
    for (;;) {
      int count = ::epoll_wait(epoll_fd.get(), events, max_events_per_wait,
                               next_timeout_ms());
      if (count < 0) {
        if (errno == EINTR)
          continue;
        // Only EBADF, EFAULT or EINVAL are possible: a bug, not a condition.
        transport_log("reactor: epoll_wait failed: "
                      + errno_text(errno));
        std::abort();
      }
      dispatch_events(events, count);
      run_due_timers();
      run_queue();
      std::lock_guard<std::mutex> guard{mtx};
      if (stopping)
        break;
    }
    // Drop what is left on this thread, outside the lock: destructors of
    // callbacks may call dispatch(), which now drops the function.
    decltype(entries) rest;
    decltype(queue) pending;
    decltype(timers) unfired;
    {
      std::lock_guard<std::mutex> guard{mtx};
      rest.swap(entries);
      pending.swap(queue);
      unfired.swap(timers);
    }
  }
};

reactor::reactor() : state_(std::make_shared<state>()) {
  state_->epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!state_->epoll_fd)
    throw_errno("relay reactor: epoll_create1");
  state_->wake_fd.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!state_->wake_fd)
    throw_errno("relay reactor: eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = wakeup_token;
  if (::epoll_ctl(state_->epoll_fd.get(), EPOLL_CTL_ADD, state_->wake_fd.get(),
                  &ev)
      < 0)
    throw_errno("relay reactor: epoll_ctl(eventfd)");
  thread_ = std::thread{[st = state_] {
    st->loop_id.store(std::this_thread::get_id());
    ::pthread_setname_np(::pthread_self(), "relay-reactor");
    st->run();
  }};
}

reactor::~reactor() {
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    state_->stopping = true;
  }
  state_->wake();
  if (on_loop_thread())
    thread_.detach(); // the loop holds state_ and exits after this callback
  else
    thread_.join();
}

caf::expected<reactor::token>
reactor::add(int fd, uint32_t events, io_callback callback) {
  if (fd < 0 || !callback)
    return make_error(errc::invalid_argument,
                      "reactor: add needs an open fd and a callback");
  std::lock_guard<std::mutex> guard{state_->mtx};
  auto id = state_->next_token++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  if (::epoll_ctl(state_->epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
    return make_errno_error(errc::invalid_argument, "reactor", errno,
                            "epoll_ctl(ADD, fd " + std::to_string(fd) + ")");
  state_->entries.emplace(
    id, std::make_shared<registration>(registration{fd, std::move(callback)}));
  return id;
}

caf::error reactor::modify(token id, uint32_t events) {
  std::lock_guard<std::mutex> guard{state_->mtx};
  auto i = state_->entries.find(id);
  if (i == state_->entries.end())
    return make_error(errc::invalid_argument,
                      "reactor: no registration " + std::to_string(id));
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  if (::epoll_ctl(state_->epoll_fd.get(), EPOLL_CTL_MOD, i->second->fd, &ev)
      < 0)
    return make_errno_error(errc::invalid_argument, "reactor", errno,
                            "epoll_ctl(MOD, fd "
                              + std::to_string(i->second->fd) + ")");
  return caf::none;
}

void reactor::remove(token id) {
  if (on_loop_thread()) {
    state_->remove_now(id);
    return;
  }
  // Run the removal on the loop: once it ran, the loop is between callbacks,
  // so the callback is not running and can never run again.
  std::promise<void> done;
  auto removed = done.get_future();
  std::function<void()> fn = [st = state_.get(), id, &done] {
    st->remove_now(id);
    done.set_value();
  };
  if (!state_->post(fn)) {
    state_->remove_now(id); // unreachable while an owner calls us
    return;
  }
  removed.wait();
}

void reactor::dispatch(std::function<void()> fn) {
  if (fn)
    state_->post(fn);
}

void reactor::dispatch_after(clock::duration delay, std::function<void()> fn) {
  if (!fn)
    return;
  bool earliest;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    if (state_->stopping)
      return;
    auto seq = state_->next_timer_seq++;
    state_->timers.push_back(timer{clock::now() + delay, seq, std::move(fn)});
    std::push_heap(state_->timers.begin(), state_->timers.end(),
                   fires_later{});
    earliest = state_->timers.front().seq == seq;
  }
  // The loop recomputes its timeout before each wait; only a loop blocked in
  // epoll_wait with a later deadline needs a nudge.
  if (earliest && !on_loop_thread())
    state_->wake();
}

bool reactor::on_loop_thread() const noexcept {
  return state_->loop_id.load() == std::this_thread::get_id();
}

} // namespace relay
