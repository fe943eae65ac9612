#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>

#include "relay/transport.hpp"

namespace relay {

/// Back-pressure for one connection: the wire bytes of the messages its
/// peer sent that sit in local mailboxes, delivered and not yet processed.
/// When they reach `bound` the connection stops reading; when they fall to
/// half of it, reading resumes. The peer's frames then back up in the
/// transport and, past the peer's own relay.max-queued-bytes, its sends are
/// refused there, where the sender can see it.
///
/// Thread rules: charge() runs on the connection's I/O thread; release()
/// on whichever thread destroys a counted mailbox element (the receiving
/// actor's, usually). Pausing and resuming race-free through a CAS on
/// `paused_`: of a charge and a release that cross, exactly one acts.
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

  /// Bytes delivered and not yet released.
  size_t in_flight() const noexcept {
    return in_flight_.load(std::memory_order_relaxed);
  }

  /// Whether reading is paused for this budget.
  bool paused() const noexcept {
    return paused_.load(std::memory_order_relaxed);
  }

private:
  void resume_if_below() noexcept;

  std::weak_ptr<connection> conn_;
  const size_t bound_;
  std::atomic<uint64_t>& pauses_; // the node's counter
  std::atomic<size_t> in_flight_{0};
  std::atomic<bool> paused_{false};
};

/// Makes a mailbox element for a message that arrived from a peer; the
/// element gives `bytes` back to `budget` when CAF destroys it, i.e. once
/// the receiver processed it, or dropped it (a closed mailbox), or moved
/// its content on (delegation, which charges nothing further).
caf::mailbox_element_ptr
make_counted_element(caf::strong_actor_ptr sender, caf::message_id mid,
                     caf::mailbox_element::forwarding_stack stages,
                     caf::message msg, std::shared_ptr<inbound_budget> budget,
                     size_t bytes);

} // namespace relay
