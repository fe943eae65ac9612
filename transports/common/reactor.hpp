#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace relay {

/// The I/O event loop shared by every socket transport of a node: one epoll
/// thread serves all listeners and connections, however many there are.
///
/// Owners register file descriptors with a callback that receives the epoll
/// event mask (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP) on the loop thread.
/// Other threads reach the loop through dispatch(); an eventfd wakes it.
///
/// Thread rules: every member function is thread-safe unless stated. Callbacks
/// and dispatched functions run on the loop thread, one at a time; they must
/// not block and must not throw (an escaping exception terminates the
/// process, as for any thread). A callback may add, modify and remove any
/// registration, including its own, and may dispatch more work.
///
/// Ownership: shared (std::shared_ptr) by the transports and connections
/// using it. The loop thread starts in the constructor and stops when the last
/// owner releases the reactor; registrations still present then are dropped
/// (their callbacks destroyed on the loop thread, never called again).
class reactor {
public:
  /// Identifies one registration. Never reused within one reactor, so a stale
  /// token can never reach a newer registration of the same fd number.
  using token = uint64_t;

  /// Receives the epoll event mask of one readiness notification.
  using io_callback = std::function<void(uint32_t events)>;

  using clock = std::chrono::steady_clock;

  /// Upper bound on events taken from the kernel per epoll_wait.
  static constexpr int max_events_per_wait = 64;

  /// Creates the epoll instance and the wake-up eventfd and starts the loop
  /// thread. Throws std::system_error if the kernel refuses any of them.
  reactor();

  /// Stops the loop and joins it. If the last owner lets go on the loop
  /// thread itself (inside a callback), the thread is detached instead and
  /// exits as soon as that callback returns.
  ~reactor();

  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  /// Registers `fd` for `events` (EPOLLIN, EPOLLOUT, level-triggered);
  /// `callback` runs on the loop thread on readiness. The caller keeps owning
  /// `fd` and must keep it open until remove() returned. Errors: the kernel
  /// refused the registration (errc::invalid_argument with the errno text).
  caf::expected<token> add(int fd, uint32_t events, io_callback callback);

  /// Replaces the event mask of registration `id`. Takes effect immediately,
  /// also when called from another thread while the loop waits. Errors:
  /// unknown token, or the kernel refused (errc::invalid_argument).
  caf::error modify(token id, uint32_t events);

  /// Removes registration `id`; no-op for an unknown token. After remove
  /// returns, the callback is not running and never runs again, except that
  /// a callback removing itself finishes its current call. Off the loop
  /// thread this waits for the loop to reach a safe point, so the caller must
  /// not hold a lock that a callback may take.
  void remove(token id);

  /// Runs `fn` on the loop thread, after the callbacks and functions already
  /// queued (FIFO). Never runs `fn` inline. Functions dispatched while the
  /// reactor shuts down are dropped without running.
  void dispatch(std::function<void()> fn);

  /// Runs `fn` on the loop thread once `delay` has elapsed. There is no
  /// cancellation: capture a std::weak_ptr and check it. Dropped like
  /// dispatch() when the reactor shuts down first.
  void dispatch_after(clock::duration delay, std::function<void()> fn);

  /// True if the caller runs on the loop thread.
  bool on_loop_thread() const noexcept;

private:
  struct state;

  // Shared with the loop thread so that the loop can finish safely when the
  // reactor is destroyed from one of its own callbacks.
  std::shared_ptr<state> state_;
  std::thread thread_;
};

} // namespace relay
