#include "inbound_budget.hpp"

#include <caf/type_erased_tuple.hpp>

namespace relay {

void inbound_budget::charge(size_t bytes) {
  auto now = in_flight_.fetch_add(bytes) + bytes;
  if (now < bound_ || paused_.load())
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  // Decided on the current count: releases may have crossed meanwhile.
  if (paused_.load() || disabled_ || in_flight_.load() < bound_)
    return;
  auto conn = conn_.lock();
  if (conn && conn->pause_reading(true)) {
    paused_.store(true);
    ++pauses_;
  }
}

void inbound_budget::release(size_t bytes) noexcept {
  auto now = in_flight_.fetch_sub(bytes) - bytes;
  if (now > bound_ / 2 || !paused_.load())
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  if (!paused_.load() || in_flight_.load() > bound_ / 2)
    return;
  resume_locked();
}

void inbound_budget::disable() noexcept {
  std::lock_guard<std::mutex> guard{mtx_};
  disabled_ = true;
  if (paused_.load())
    resume_locked();
}

void inbound_budget::resume_locked() noexcept {
  paused_.store(false);
  if (auto conn = conn_.lock()) {
    try {
      conn->pause_reading(false);
    } catch (...) {
      // Only allocation can fail (the dispatch to the I/O thread). Stay
      // paused: the next release tries again.
      paused_.store(true);
    }
  }
}

namespace {

/// A mailbox element holding a decoded message and its share of a budget.
// No content: one stateless tuple shared by every element.
caf::empty_type_erased_tuple& no_content() {
  static caf::empty_type_erased_tuple instance;
  return instance;
}

// At most 120 bytes, which glibc serves from its fast bins: the I/O thread
// allocates one per message and a worker frees it, so the element never
// comes back through the allocating thread's cache, and a larger chunk
// would take malloc's slow path every time (9 % of a receiving node's time
// in a 64 B stream before).
class counted_element final : public caf::mailbox_element {
public:
  counted_element(caf::strong_actor_ptr&& sender, caf::message_id mid,
                  forwarding_stack&& stages, caf::message&& msg,
                  std::shared_ptr<inbound_budget>&& budget, size_t bytes,
                  std::shared_ptr<actor_traffic>&& traffic)
    : caf::mailbox_element(std::move(sender), mid, std::move(stages)),
      msg_(std::move(msg)),
      budget_(std::move(budget)),
      traffic_(std::move(traffic)),
      bytes_(static_cast<uint32_t>(bytes)) {
    // nop
  }

  ~counted_element() override {
    budget_->release(bytes_);
    if (traffic_)
      traffic_->queued.fetch_sub(1, std::memory_order_relaxed);
  }

  caf::type_erased_tuple& content() override {
    if (msg_.empty())
      return no_content();
    return msg_.content();
  }

  const caf::type_erased_tuple& content() const override {
    if (msg_.empty())
      return no_content();
    return msg_.content();
  }

  caf::message move_content_to_message() override {
    caf::message result;
    result.swap(msg_);
    return result;
  }

  caf::message copy_content_to_message() const override {
    return msg_;
  }

private:
  caf::message msg_;
  std::shared_ptr<inbound_budget> budget_;
  std::shared_ptr<actor_traffic> traffic_; // null: not published
  uint32_t bytes_; // a frame body's size, which is 32-bit on the wire
};

static_assert(sizeof(counted_element) <= 120,
              "keep mailbox elements in glibc's fast bins (see above)");

} // namespace

caf::mailbox_element_ptr
make_counted_element(caf::strong_actor_ptr sender, caf::message_id mid,
                     caf::mailbox_element::forwarding_stack stages,
                     caf::message msg, std::shared_ptr<inbound_budget> budget,
                     size_t bytes, std::shared_ptr<actor_traffic> traffic) {
  auto& counter = *budget;
  if (traffic) {
    traffic->messages_in.fetch_add(1, std::memory_order_relaxed);
    traffic->queued.fetch_add(1, std::memory_order_relaxed);
  }
  caf::mailbox_element_ptr result{
    new counted_element(std::move(sender), mid, std::move(stages),
                        std::move(msg), std::move(budget), bytes,
                        std::move(traffic))};
  counter.charge(bytes);
  return result;
}

} // namespace relay
