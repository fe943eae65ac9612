#include "io_unit.hpp"

#include <memory>

#include <caf/scheduler/abstract_coordinator.hpp>

namespace relay {

namespace {

struct thread_batch {
  bool open = false;
  // One unit per actor system this thread delivered to; few, so a vector.
  std::vector<std::unique_ptr<io_unit>> units;
};

thread_batch& this_thread_batch() {
  thread_local thread_batch batch;
  return batch;
}

} // namespace

void io_unit::open() {
  this_thread_batch().open = true;
}

void io_unit::close() {
  auto& batch = this_thread_batch();
  if (!batch.open)
    return;
  batch.open = false;
  for (auto& unit : batch.units)
    unit->flush();
}

io_unit* io_unit::batching(caf::actor_system& sys, bool run_here) {
  auto& batch = this_thread_batch();
  if (!batch.open)
    return nullptr;
  io_unit* unit = nullptr;
  for (auto& x : batch.units)
    if (&x->system() == &sys)
      unit = x.get();
  if (unit == nullptr) {
    batch.units.push_back(std::make_unique<io_unit>(sys));
    unit = batch.units.back().get();
  }
  unit->run_here_ = run_here;
  return unit;
}

void io_unit::exec_later(caf::resumable* job) {
  // CAF passes the reference it took for the scheduler; flush() hands it on.
  if (std::this_thread::get_id() != owner_
      || !(flushing_ || this_thread_batch().open)) {
    system().scheduler().enqueue(job);
    return;
  }
  pending_.push_back({job, run_here_});
}

void io_unit::flush() {
  // An actor run here may send to more actors through this unit: they are
  // noted meanwhile and handled in the next round. At most max_jobs run.
  size_t ran = 0;
  flushing_ = true;
  while (!pending_.empty()) {
    auto jobs = std::move(pending_);
    pending_.clear();
    for (auto& job : jobs) {
      if (!job.run_here || ran == max_jobs) {
        system().scheduler().enqueue(job.ptr); // keeps the reference
        continue;
      }
      ++ran;
      switch (job.ptr->resume(this, max_messages)) {
        case caf::resumable::resume_later:
          system().scheduler().enqueue(job.ptr);
          break;
        case caf::resumable::done:
        case caf::resumable::awaiting_message:
        case caf::resumable::shutdown_execution_unit:
          intrusive_ptr_release(job.ptr);
          break;
      }
    }
  }
  flushing_ = false;
}

} // namespace relay
