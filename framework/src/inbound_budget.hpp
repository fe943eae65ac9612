#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>

#include "export_table.hpp"
#include "relay/transport.hpp"

namespace relay {

/// Back-pressure for one connection: the wire bytes of the messages its
/// peer sent that sit in local mailboxes, delivered and not yet processed.
/// When they reach `bound` the connection stops reading; when they fall to
/// half of it, reading resumes. The peer's frames then back up in the
/// transport and, past the peer's own relay.max-queued-bytes, its sends are
/// refused there, where the sender can see it.
///
/// Thread rules: thread-safe. charge() runs where messages are delivered
/// (the I/O thread, or a thread that releases held frames, retire.cpp);
/// release() on whichever thread destroys a counted mailbox element (the
/// receiving actor's, usually). The counter is an atomic; pausing and
/// resuming, which are rare, happen under a mutex together with the call
/// to the connection, so the connection's state always follows the last
/// decision.
class inbound_budget {
public:
  /// `conn` is not owned: a budget outliving its connection does nothing.
  inbound_budget(std::weak_ptr<connection> conn, size_t bound,
                 std::atomic<uint64_t>& pauses)
    : conn_(std::move(conn)), bound_(bound), pauses_(pauses) {
    // nop
  }

  /// Counts `bytes` delivered; pauses reading at the bound.
  void charge(size_t bytes);

  /// Counts `bytes` processed (or discarded); resumes reading at half the
  /// bound.
  void release(size_t bytes) noexcept;

  /// Never pauses again, and resumes now if paused: for a connection that
  /// lost a duplicate tie-break (retire.cpp), whose remaining frames, the
  /// remote's retire frame among them, must be read for it to close.
  void disable() noexcept;

  /// Bytes delivered and not yet released.
  size_t in_flight() const noexcept {
    return in_flight_.load();
  }

  /// Whether reading is paused for this budget (the transport honoured it).
  bool paused() const noexcept {
    return paused_.load();
  }

private:
  // Resumes reading; requires mtx_ and paused_.
  void resume_locked() noexcept;

  std::weak_ptr<connection> conn_;
  const size_t bound_;
  std::atomic<uint64_t>& pauses_; // the node's counter
  std::atomic<size_t> in_flight_{0};
  std::atomic<bool> paused_{false}; // written under mtx_
  std::mutex mtx_;
  bool disabled_ = false; // guarded by mtx_
};

/// Makes a mailbox element for a message that arrived from a peer; the
/// element gives `bytes` back to `budget` when CAF destroys it, i.e. once
/// the receiver processed it, or dropped it (a closed mailbox), or moved
/// its content on (delegation, which charges nothing further). If
/// `traffic` is set (a published receiver), the message counts there as
/// received and as queued until then.
caf::mailbox_element_ptr
make_counted_element(caf::strong_actor_ptr sender, caf::message_id mid,
                     caf::mailbox_element::forwarding_stack stages,
                     caf::message msg, std::shared_ptr<inbound_budget> budget,
                     size_t bytes, std::shared_ptr<actor_traffic> traffic);

} // namespace relay
