#pragma once

// Exchanges a transport runs on an accepted socket before it becomes a
// connection (tcp authentication, shm region hand-over), driven by the
// reactor without ever blocking it, bounded in time and in number.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <caf/error.hpp>

#include "common/reactor.hpp"
#include "common/socket_util.hpp"
#include "common/transport_log.hpp"

namespace relay {

/// What one step of a set-up says.
struct setup_status {
  enum class state { waiting, done, failed };
  state st = state::waiting;
  /// When waiting: EPOLLIN and/or EPOLLOUT.
  uint32_t events = 0;
  /// When failed: why, naming the peer.
  caf::error error;

  static setup_status wait(uint32_t events) {
    return {state::waiting, events, caf::error{}};
  }
  static setup_status done() {
    return {state::done, 0, caf::error{}};
  }
  static setup_status fail(caf::error why) {
    return {state::failed, 0, std::move(why)};
  }
};

/// The set-ups in progress at one listener.
///
/// Thread rules: start() on the reactor thread; stop() on any thread.
class setup_sessions : public std::enable_shared_from_this<setup_sessions> {
public:
  /// Runs on readiness (and once at start) with the socket; may read and
  /// write without blocking.
  using step_fn = std::function<setup_status(int fd)>;

  /// Receives the socket of a finished set-up.
  using done_fn = std::function<void(unique_fd fd)>;

  /// Set-ups at once per listener; more are refused (and logged) at once,
  /// so that a flood of silent peers cannot exhaust descriptors.
  static constexpr size_t max_pending = 1024;

  /// `uri` and `what` ("an unauthenticated connection") name the refusals
  /// in the log; each is counted in `rejected`.
  setup_sessions(std::weak_ptr<reactor> io, std::string uri, std::string what,
                 std::chrono::milliseconds timeout, rejection_counter rejected);

  /// Runs `step` on `fd` until it is done (then `done(fd)`, unless stopped)
  /// or failed or timed out (then the socket closes and the reason is logged
  /// and counted). `peer` names the peer in a timeout.
  void start(unique_fd fd, std::string peer, step_fn step, done_fn done);

  /// Refuses a peer without a set-up: logs and counts `reason`.
  void reject(const caf::error& reason);

  /// Drops every set-up in progress: when stop() returns, no step or done
  /// callback runs, and none will.
  void stop();

  class session;

private:
  friend class session;
  void finish(session* s);

  std::weak_ptr<reactor> io_;
  std::string uri_;
  std::string what_;
  std::chrono::milliseconds timeout_;
  rejection_counter rejected_;
  std::mutex mtx_;
  // Held by a finishing set-up while it runs its callback; recursive so
  // that a callback may stop its own listener.
  std::recursive_mutex callback_mtx_;
  bool stopped_ = false;
  std::unordered_map<session*, std::shared_ptr<session>> sessions_;
};

} // namespace relay
