// The shared epoll reactor: dispatch, timers, and registrations removed from
// inside callbacks or from other threads. Synchronised on events, no sleeps.

#include "common/reactor.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/socket_util.hpp"

using namespace relay;
using namespace std::chrono_literals;

namespace {

constexpr auto wait_bound = 20s;

unique_fd readable_eventfd() {
  unique_fd fd{::eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC)};
  EXPECT_TRUE(fd);
  return fd;
}

// Blocks the loop thread until released, so that a test can line up events
// that the loop then sees in one batch.
class loop_gate {
public:
  explicit loop_gate(reactor& io) {
    io.dispatch([this] {
      entered_.set_value();
      release_.get_future().wait();
    });
    entered_.get_future().wait();
  }
  void open() {
    release_.set_value();
  }

private:
  std::promise<void> entered_;
  std::promise<void> release_;
};

template <class Future>
bool ready(Future& f) {
  return f.wait_for(wait_bound) == std::future_status::ready;
}

} // namespace

TEST(reactor_test, dispatch_runs_in_order_on_the_loop_thread) {
  reactor io;
  std::vector<int> order;
  std::promise<bool> done;
  auto result = done.get_future();
  for (int i = 0; i < 100; ++i)
    io.dispatch([&, i] { order.push_back(i); });
  io.dispatch([&] { done.set_value(io.on_loop_thread()); });
  ASSERT_TRUE(ready(result));
  EXPECT_TRUE(result.get());
  EXPECT_FALSE(io.on_loop_thread());
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(order[i], i);
}

TEST(reactor_test, timers_fire_in_deadline_order) {
  reactor io;
  std::mutex mtx;
  std::vector<int> fired;
  std::promise<void> last;
  auto all = last.get_future();
  io.dispatch_after(30ms, [&] {
    std::lock_guard<std::mutex> guard{mtx};
    fired.push_back(3);
    last.set_value();
  });
  io.dispatch_after(10ms, [&] {
    std::lock_guard<std::mutex> guard{mtx};
    fired.push_back(2);
  });
  io.dispatch_after(0ms, [&] {
    std::lock_guard<std::mutex> guard{mtx};
    fired.push_back(1);
  });
  ASSERT_TRUE(ready(all));
  std::lock_guard<std::mutex> guard{mtx};
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
}

TEST(reactor_test, callback_can_remove_itself) {
  reactor io;
  auto fd = readable_eventfd();
  std::atomic<int> calls{0};
  std::promise<void> called;
  reactor::token self = 0;
  std::mutex mtx;
  {
    // Held across add(): the callback may fire before add() returns, and
    // must not read `self` before it is set.
    std::lock_guard<std::mutex> guard{mtx};
    auto id = io.add(fd.get(), EPOLLIN, [&](uint32_t) {
      ++calls;
      std::lock_guard<std::mutex> guard{mtx};
      io.remove(self); // level-triggered: without this it would fire again
      called.set_value();
    });
    ASSERT_TRUE(id);
    self = *id;
  }
  auto f = called.get_future();
  ASSERT_TRUE(ready(f));
  // A full loop turn later, still one call.
  std::promise<void> turn;
  io.dispatch([&] { turn.set_value(); });
  auto t = turn.get_future();
  ASSERT_TRUE(ready(t));
  EXPECT_EQ(calls, 1);
}

TEST(reactor_test, callback_can_remove_another_ready_registration) {
  reactor io;
  auto a = readable_eventfd();
  auto b = readable_eventfd();
  std::atomic<int> calls{0};
  reactor::token ids[2] = {0, 0};
  loop_gate gate{io}; // both become ready before the loop looks
  auto make_cb = [&](int me) {
    return [&, me](uint32_t) {
      ++calls;
      io.remove(ids[1 - me]);
      io.remove(ids[me]);
    };
  };
  auto ia = io.add(a.get(), EPOLLIN, make_cb(0));
  auto ib = io.add(b.get(), EPOLLIN, make_cb(1));
  ASSERT_TRUE(ia && ib);
  ids[0] = *ia;
  ids[1] = *ib;
  gate.open();
  std::promise<void> turn;
  io.dispatch([&] { turn.set_value(); });
  auto t = turn.get_future();
  ASSERT_TRUE(ready(t));
  // Whichever ran first removed both; the other, though in the same batch,
  // never ran.
  EXPECT_EQ(calls, 1);
}

TEST(reactor_test, remove_from_another_thread_waits_for_a_running_callback) {
  reactor io;
  auto fd = readable_eventfd();
  std::promise<void> entered;
  std::promise<void> release;
  auto release_f = release.get_future().share();
  std::atomic<bool> finished{false};
  std::atomic<int> calls{0};
  auto id = io.add(fd.get(), EPOLLIN, [&](uint32_t) {
    if (calls++ == 0) {
      entered.set_value();
      release_f.wait();
      finished = true;
    }
  });
  ASSERT_TRUE(id);
  auto e = entered.get_future();
  ASSERT_TRUE(ready(e));
  auto remover = std::async(std::launch::async, [&] {
    io.remove(*id);
    return finished.load();
  });
  // remove() cannot return while the callback runs.
  EXPECT_EQ(remover.wait_for(50ms), std::future_status::timeout);
  release.set_value();
  ASSERT_TRUE(ready(remover));
  EXPECT_TRUE(remover.get());
  auto calls_at_removal = calls.load();
  std::promise<void> turn;
  io.dispatch([&] { turn.set_value(); });
  auto t = turn.get_future();
  ASSERT_TRUE(ready(t));
  EXPECT_EQ(calls, calls_at_removal);
}

TEST(reactor_test, modify_from_another_thread_takes_effect) {
  reactor io;
  auto fd = readable_eventfd();
  std::promise<void> fired;
  std::atomic<bool> once{false};
  auto id = io.add(fd.get(), 0, [&](uint32_t events) {
    if (!once.exchange(true)) {
      EXPECT_TRUE(events & EPOLLIN);
      fired.set_value();
    }
  });
  ASSERT_TRUE(id);
  ASSERT_FALSE(io.modify(*id, EPOLLIN));
  auto f = fired.get_future();
  ASSERT_TRUE(ready(f));
  io.remove(*id);
  EXPECT_TRUE(io.modify(*id, EPOLLIN)); // unknown token now
}

TEST(reactor_test, last_owner_may_let_go_on_the_loop_thread) {
  auto io = std::make_shared<reactor>();
  std::promise<void> done;
  auto f = done.get_future();
  auto* raw = io.get();
  raw->dispatch([keep = std::move(io), &done]() mutable {
    keep.reset(); // destroys the reactor from its own loop thread
    done.set_value();
  });
  ASSERT_TRUE(ready(f));
}
