#pragma once

#include <cstddef>
#include <deque>

#include <caf/actor_system.hpp>
#include <caf/execution_unit.hpp>
#include <caf/resumable.hpp>

namespace relay {

/// Runs actors on the transport I/O thread that read their message
/// (relay.deliver-on-io-thread): a delivered message no longer waits for a
/// scheduler worker to wake up. Bounded: at most max_jobs actors per
/// delivered message, each for at most max_messages messages; whatever is
/// left goes to CAF's scheduler. Actors that block (a blocking lookup,
/// request(...).receive inside a handler) stall every connection of the
/// node while they do, which is why this is an option.
///
/// Thread rules: one per I/O thread (thread_local), used only there.
class io_unit : public caf::execution_unit {
public:
  static constexpr size_t max_jobs = 16;
  static constexpr size_t max_messages = 16;

  explicit io_unit(caf::actor_system& sys) : caf::execution_unit(&sys) {
    // nop
  }

  /// The unit of the calling thread for `sys`, or null if this thread
  /// already serves another actor system.
  static io_unit* of(caf::actor_system& sys);

  void exec_later(caf::resumable* job) override {
    pending_.push_back(job);
  }

  /// Runs what exec_later collected (see the bounds above).
  void run_pending();

private:
  std::deque<caf::resumable*> pending_;
};

} // namespace relay
