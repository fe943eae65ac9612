#pragma once

#include <cstddef>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/execution_unit.hpp>
#include <caf/resumable.hpp>

namespace relay {

/// Wakes the actors that messages decoded on an I/O thread were delivered
/// to once per read instead of once per message.
///
/// While a batch is open on the calling thread (from a connection's first
/// on_frame to its on_frames_end), a message is enqueued with this unit as
/// its execution unit: the first message that finds a receiver idle makes
/// CAF hand the receiver to exec_later, which only notes it; the messages
/// after it land in the same mailbox without waking anyone. close() then
/// schedules every noted actor once, so an actor that was sent 500
/// messages in one 64 KiB read is woken once and processes them in one
/// resume. Nothing is reordered: each mailbox receives in wire order; the
/// wake is put off by at most one read's decoding.
///
/// With relay.deliver-on-io-thread, close() instead runs the noted actors
/// on the I/O thread itself, bounded: at most max_jobs actors per batch,
/// each for at most max_messages messages, whatever is left goes to CAF's
/// scheduler. Actors that block in a handler (a blocking lookup,
/// request(...).receive) stall every connection of the node while they do,
/// which is why that is an option.
///
/// Thread rules: units and the open batch are per thread (thread_local),
/// used only by that thread. A thread serves any number of actor systems,
/// one unit each.
class io_unit : public caf::execution_unit {
public:
  static constexpr size_t max_jobs = 16;
  static constexpr size_t max_messages = 16;

  explicit io_unit(caf::actor_system& sys)
    : caf::execution_unit(&sys), owner_(std::this_thread::get_id()) {
    // nop
  }

  /// Opens a batch on this thread (idempotent).
  static void open();

  /// Closes this thread's batch, if open: wakes (or, for `run_here` units,
  /// runs) every actor noted since open().
  static void close();

  /// The unit to enqueue a message for an actor of `sys` with: this
  /// thread's unit for `sys` while a batch is open, else null (CAF then
  /// schedules the receiver at once). `run_here` selects the I/O-thread
  /// delivery for the actors noted through this call.
  static io_unit* batching(caf::actor_system& sys, bool run_here);

  /// Notes `job` while this thread's batch is open or its actors run in
  /// close(); from any other thread or at any other time (an actor that
  /// ran here keeps this unit as its context, and may be sent to from
  /// elsewhere later) schedules it at once.
  void exec_later(caf::resumable* job) override;

private:
  struct job {
    caf::resumable* ptr;
    bool run_here;
  };

  // Runs or schedules what exec_later noted.
  void flush();

  const std::thread::id owner_;
  std::vector<job> pending_;
  bool run_here_ = false; // for the enqueue in progress
  bool flushing_ = false; // flush() runs
};

} // namespace relay
