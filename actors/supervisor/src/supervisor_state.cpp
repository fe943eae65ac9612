#include "supervisor_state.hpp"

#include <algorithm>

#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"
#include "supervisor_validation.hpp"

namespace relay {

namespace {

bool is_exit_reason(const caf::error& x, caf::exit_reason r) {
  return x == caf::make_error(r);
}

/// OTP's clean exits: normal and shutdown.
bool is_clean(const caf::error& reason) {
  return !reason || is_exit_reason(reason, caf::exit_reason::user_shutdown);
}

} // namespace

// -- operations -------------------------------------------------------------------------

void supervisor_state::post(std::function<void()> run,
                            std::function<void()> cancel) {
  if (busy_ || stopping_) {
    shared_->deferred.push_back({std::move(run), std::move(cancel)});
    return;
  }
  run();
}

std::function<void()> supervisor_state::cancel_with(caf::response_promise rp) {
  auto name = spec_.name;
  return [rp, name]() mutable {
    rp.deliver(caf::make_error(caf::sec::request_receiver_down,
                               "supervisor '" + name + "' is shutting down"));
  };
}

void supervisor_state::begin_op() {
  busy_ = true;
}

void supervisor_state::end_op() {
  busy_ = false;
  // Only the outermost end_op runs the queue: a call that completes at once
  // ends its own operation inside next.run(), and must not recurse.
  if (draining_)
    return;
  draining_ = true;
  auto& queue = shared_->deferred;
  while (!busy_ && !stopping_ && !queue.empty()) {
    auto next = std::move(queue.front());
    queue.pop_front();
    next.run();
  }
  draining_ = false;
}

void supervisor_state::start_one(const child_ptr& c, bool restart,
                                 bool report_error, start_done_fn done) {
  auto on_result = [this, c, restart, report_error,
                    done = std::move(done)](child_start::result r) {
    caf::error err;
    if (!r) {
      err = std::move(r.error());
    } else if (*r && !c->spec.name.empty()) {
      // A named child: this incarnation answers to the name (the previous
      // one's registration ended with it).
      if (auto perr = spec_.node->publish(*r, c->spec.name)) {
        caf::anon_send_exit(*r, caf::exit_reason::kill);
        err = std::move(perr);
      }
    }
    if (err) {
      auto failure = make_error(supervisor_errc::start_failed,
                                describe_child(*c) + ": " + describe(err));
      if (report_error)
        report(supervisor_report::kind::start_error, c.get(), failure);
      done(std::move(failure));
      return;
    }
    if (!*r) { // OTP's ignore
      c->st = child_record::state::undefined;
      done(caf::none);
      return;
    }
    c->handle = std::move(*r);
    c->last_handle = c->handle;
    c->st = child_record::state::running;
    c->exit_pending = false;
    c->last_addr = c->handle.address();
    ++c->incarnation;
    c->started_at = self_->clock().now();
    by_addr_[c->last_addr] = c;
    shared_->live[c->last_addr] = c->handle;
    self_->monitor(c->handle);
    report(supervisor_report::kind::started, c.get(), caf::error{}, restart);
    done(caf::none);
  };
  c->spec.start(self_, c->extra, std::move(on_result));
}

void supervisor_state::on_down(caf::down_msg& dm) {
  auto s = stopping_children_.find(dm.source);
  if (s != stopping_children_.end()) {
    auto pending = std::move(s->second);
    stopping_children_.erase(s);
    finish_stop(pending, dm.reason);
    return;
  }
  auto i = by_addr_.find(dm.source);
  if (i == by_addr_.end()) {
    subscribers_.erase(
      std::remove_if(subscribers_.begin(), subscribers_.end(),
                     [&](const caf::actor& x) { return x.address() == dm.source; }),
      subscribers_.end());
    return;
  }
  // The incarnation is gone now, whether or not an operation runs: an
  // operation that wants to stop it finds it stopped (OTP takes the reason
  // from the EXIT already queued). What to do about it waits its turn.
  auto c = i->second;
  by_addr_.erase(i);
  shared_->live.erase(dm.source);
  c->handle = nullptr;
  c->st = child_record::state::undefined;
  c->last_exit = dm.reason;
  c->exit_pending = true;
  auto incarnation = c->incarnation;
  auto epoch = c->restart_epoch;
  post([this, c, incarnation, epoch, reason = std::move(dm.reason)] {
    // Ignored if the child was stopped, restarted or deleted meanwhile
    // (terminate_child, a group restart, delete_child bump the epoch): OTP
    // flushes those EXITs (unlink_flush).
    if (c->incarnation != incarnation || c->restart_epoch != epoch
        || c->st != child_record::state::undefined || !contains(c))
      return;
    c->exit_pending = false;
    on_child_exit(c, reason);
  });
}

void supervisor_state::stop_one(const child_ptr& c, done_fn done) {
  if (c->st != child_record::state::running) {
    if (c->st == child_record::state::restarting)
      c->st = child_record::state::undefined;
    done();
    return;
  }
  auto policy = c->spec.effective_shutdown();
  pending_stop pending{c, policy, 0, false, std::move(done)};
  auto& h = c->handle;
  switch (policy.how) {
    case shutdown_policy::kind::brutal_kill:
      self_->send_exit(h, caf::exit_reason::kill);
      break;
    case shutdown_policy::kind::timeout:
      pending.timer = next_timer_++;
      self_->send_exit(h, caf::exit_reason::user_shutdown);
      self_->delayed_send(self_, policy.timeout, shutdown_timer_atom::value,
                          pending.timer);
      break;
    case shutdown_policy::kind::infinity:
      self_->send_exit(h, caf::exit_reason::user_shutdown);
      break;
  }
  stopping_children_.emplace(h.address(), std::move(pending));
}

void supervisor_state::on_shutdown_timer(uint64_t timer) {
  for (auto& kvp : stopping_children_) {
    auto& pending = kvp.second;
    if (pending.timer != timer || pending.killed_after_timeout)
      continue;
    pending.killed_after_timeout = true;
    if (pending.child->handle)
      self_->send_exit(pending.child->handle, caf::exit_reason::kill);
  }
}

void supervisor_state::finish_stop(pending_stop& pending, const caf::error& reason) {
  auto& c = pending.child;
  by_addr_.erase(c->last_addr);
  shared_->live.erase(c->last_addr);
  c->handle = nullptr;
  c->st = child_record::state::undefined;
  // OTP's shutdown/2: brutal_kill expects killed; a timeout or infinity
  // expects shutdown, and from a non-permanent child also normal.
  bool expected;
  bool clean_ok = !reason && c->spec.restart != restart_type::permanent;
  if (pending.policy.how == shutdown_policy::kind::brutal_kill)
    expected = is_exit_reason(reason, caf::exit_reason::kill) || clean_ok;
  else if (pending.killed_after_timeout)
    expected = false;
  else
    expected = is_exit_reason(reason, caf::exit_reason::user_shutdown)
               || clean_ok;
  if (!expected)
    report(supervisor_report::kind::shutdown_error, c.get(), reason);
  auto done = std::move(pending.done);
  done();
}

void supervisor_state::stop_each(std::vector<child_ptr> cs, done_fn done) {
  if (cs.empty()) {
    done();
    return;
  }
  auto first = cs.front();
  cs.erase(cs.begin());
  stop_one(first, [this, cs = std::move(cs), done = std::move(done)]() mutable {
    stop_each(std::move(cs), std::move(done));
  });
}

void supervisor_state::stop_all_at_once(done_fn done) {
  auto remaining = std::make_shared<size_t>(0);
  auto finish = std::make_shared<done_fn>(std::move(done));
  auto policy = template_.effective_shutdown();
  uint64_t timer = 0;
  if (policy.how == shutdown_policy::kind::timeout)
    timer = next_timer_++;
  for (auto& c : children_) {
    if (c->st != child_record::state::running)
      continue;
    ++*remaining;
    auto& h = c->handle;
    self_->send_exit(h, policy.how == shutdown_policy::kind::brutal_kill
                          ? caf::exit_reason::kill
                          : caf::exit_reason::user_shutdown);
    stopping_children_.emplace(
      h.address(), pending_stop{c, policy, timer, false, [remaining, finish] {
                                  if (--*remaining == 0)
                                    (*finish)();
                                }});
  }
  if (*remaining == 0) {
    (*finish)();
    return;
  }
  if (timer != 0)
    self_->delayed_send(self_, policy.timeout, shutdown_timer_atom::value, timer);
}

void supervisor_state::start_each(std::vector<child_ptr> cs, size_t i,
                                  bool restart, group_done_fn done) {
  if (i == cs.size()) {
    done(caf::none, nullptr);
    return;
  }
  auto c = cs[i];
  start_one(c, restart, true,
            [this, cs = std::move(cs), i, restart, c,
             done = std::move(done)](caf::error err) mutable {
              if (err) {
                done(std::move(err), c);
                return;
              }
              if (c->st == child_record::state::undefined
                  && c->spec.restart == restart_type::temporary)
                forget(c); // an ignored temporary child is not kept
              start_each(std::move(cs), i + 1, restart, std::move(done));
            });
}

// -- OTP's logic ------------------------------------------------------------------------

void supervisor_state::init() {
  begin_op();
  auto all = children_;
  start_each(all, 0, false, [this](caf::error err, child_ptr failed) {
    if (!err) {
      started_ = true;
      for (auto& rp : shared_->waiting_start)
        rp.deliver(ok_atom::value);
      shared_->waiting_start.clear();
      end_op();
      return;
    }
    // OTP's init_children: stop what started, in reverse, and fail.
    auto reason = make_error(supervisor_errc::failed_to_start_child,
                             "supervisor '" + spec_.name + "': child '"
                               + failed->spec.id + "' failed to start: "
                               + describe(err));
    stopping_ = true;
    std::vector<child_ptr> started;
    for (auto i = children_.rbegin(); i != children_.rend(); ++i)
      if ((*i)->st == child_record::state::running)
        started.push_back(*i);
    stop_each(std::move(started), [this, reason] { quit(reason); });
  });
}

void supervisor_state::on_child_exit(const child_ptr& c, caf::error reason) {
  auto now = self_->clock().now();
  auto& delay = c->spec.restart_delay;
  if (delay.enabled()) {
    auto reset = delay.reset_after.count() > 0 ? delay.reset_after : delay.max_delay;
    if (now - c->started_at >= reset)
      c->backoff_attempt = 0;
  }
  bool clean = is_clean(reason);
  switch (c->spec.restart) {
    case restart_type::permanent:
      report(supervisor_report::kind::child_terminated, c.get(), reason);
      restart(c);
      return;
    case restart_type::transient:
      if (clean)
        break;
      report(supervisor_report::kind::child_terminated, c.get(), reason);
      restart(c);
      return;
    case restart_type::temporary:
      if (!clean)
        report(supervisor_report::kind::child_terminated, c.get(), reason);
      break;
  }
  del_child(c);
  maybe_auto_shutdown(c);
}

bool supervisor_state::add_restart() {
  // OTP's add_restart/3: keep the restarts with T >= Now - Period, add Now,
  // and allow at most `intensity` of them.
  auto now = self_->clock().now();
  auto threshold = now - spec_.period;
  while (!restarts_.empty() && restarts_.front() < threshold)
    restarts_.pop_front();
  restarts_.push_back(now);
  return restarts_.size() <= spec_.intensity;
}

void supervisor_state::restart(const child_ptr& c) {
  if (!add_restart()) {
    report(supervisor_report::kind::reached_max_restart_intensity, c.get(),
           c->last_exit);
    shutdown(caf::make_error(caf::exit_reason::user_shutdown));
    return;
  }
  ++c->restarts;
  ++total_restarts_;
  if (c->spec.restart_delay.enabled()) {
    auto delay = restart_delay(*c);
    c->st = child_record::state::restarting;
    self_->delayed_send(self_, delay, delayed_restart_atom::value, c->serial,
                        c->restart_epoch);
    return;
  }
  restart_now(c);
}

void supervisor_state::restart_now(const child_ptr& c) {
  switch (spec_.strategy) {
    case restart_strategy::one_for_one:
    case restart_strategy::simple_one_for_one:
      begin_op();
      start_one(c, true, true, [this, c](caf::error err) {
        if (err) {
          c->st = child_record::state::restarting;
          retry_later(c);
        } else if (c->st == child_record::state::undefined && dynamic()) {
          forget(c); // an ignored dynamic child is dropped
        }
        end_op();
      });
      return;
    case restart_strategy::one_for_all:
      restart_group(children_);
      return;
    case restart_strategy::rest_for_one: {
      auto i = std::find(children_.begin(), children_.end(), c);
      restart_group(std::vector<child_ptr>(i, children_.end()));
      return;
    }
  }
}

void supervisor_state::restart_group(std::vector<child_ptr> group) {
  begin_op();
  std::vector<child_ptr> running;
  for (auto i = group.rbegin(); i != group.rend(); ++i)
    if ((*i)->st == child_record::state::running)
      running.push_back(*i);
  stop_each(std::move(running), [this, group = std::move(group)] {
    // OTP's restart_multiple_children: temporary children are not
    // restarted but removed; the others start in order.
    std::vector<child_ptr> to_start;
    for (auto& g : group) {
      if (g->spec.restart == restart_type::temporary) {
        forget(g);
        continue;
      }
      ++g->restart_epoch; // a pending retry, delay or exit is superseded
      g->exit_pending = false;
      to_start.push_back(g);
    }
    start_each(std::move(to_start), 0, true, [this](caf::error err, child_ptr failed) {
      if (err) {
        failed->st = child_record::state::restarting;
        retry_later(failed);
      }
      end_op();
    });
  });
}

void supervisor_state::retry_later(const child_ptr& c) {
  // OTP casts try_again_restart to itself: what is queued goes first.
  self_->send(self_, try_again_atom::value, c->serial, c->restart_epoch);
}

void supervisor_state::del_child(const child_ptr& c) {
  if (dynamic() || c->spec.restart == restart_type::temporary)
    forget(c);
  else
    c->st = child_record::state::undefined;
}

void supervisor_state::maybe_auto_shutdown(const child_ptr& c) {
  if (spec_.auto_shutdown == auto_shutdown::never || !c->spec.significant)
    return;
  if (spec_.auto_shutdown == auto_shutdown::all_significant) {
    for (auto& other : children_)
      if (other->spec.significant && other->st != child_record::state::undefined)
        return;
  }
  report(supervisor_report::kind::auto_shutdown, c.get(), c->last_exit);
  shutdown(caf::make_error(caf::exit_reason::user_shutdown));
}

void supervisor_state::shutdown(caf::error reason) {
  if (stopping_)
    return;
  stopping_ = true;
  begin_op();
  auto done = [this, reason] {
    report(supervisor_report::kind::shutdown, nullptr, reason);
    quit(reason);
  };
  if (dynamic()) {
    stop_all_at_once(std::move(done));
    return;
  }
  std::vector<child_ptr> running;
  for (auto i = children_.rbegin(); i != children_.rend(); ++i)
    if ((*i)->st == child_record::state::running)
      running.push_back(*i);
  stop_each(std::move(running), std::move(done));
}

void supervisor_state::quit(caf::error reason) {
  stopping_ = true;
  for (auto& rp : shared_->waiting_start)
    rp.deliver(reason);
  shared_->waiting_start.clear();
  auto pending = std::move(shared_->deferred);
  shared_->deferred.clear();
  for (auto& d : pending)
    if (d.cancel)
      d.cancel();
  self_->quit(std::move(reason));
}

// -- helpers --------------------------------------------------------------------------------

child_ptr supervisor_state::find(const std::string& id) const {
  for (auto& c : children_)
    if (c->spec.id == id)
      return c;
  return nullptr;
}

child_ptr supervisor_state::find_serial(uint64_t serial) const {
  for (auto& c : children_)
    if (c->serial == serial)
      return c;
  return nullptr;
}

bool supervisor_state::contains(const child_ptr& c) const {
  return std::find(children_.begin(), children_.end(), c) != children_.end();
}

void supervisor_state::forget(const child_ptr& c) {
  ++c->restart_epoch;
  children_.erase(std::remove(children_.begin(), children_.end(), c),
                  children_.end());
}

std::string supervisor_state::describe_child(const child_record& c) const {
  if (dynamic())
    return "child of supervisor '" + spec_.name + "'";
  return "child '" + c.spec.id + "' of supervisor '" + spec_.name + "'";
}

caf::timespan supervisor_state::restart_delay(child_record& c) {
  auto& b = c.spec.restart_delay;
  auto base = b.delay(c.backoff_attempt);
  if (c.backoff_attempt < 64)
    ++c.backoff_attempt;
  if (b.random_factor <= 0)
    return base;
  std::uniform_real_distribution<double> extra{0.0, b.random_factor};
  return base + std::chrono::duration_cast<caf::timespan>(
                  std::chrono::duration<double, std::nano>(
                    static_cast<double>(base.count()) * extra(rng_)));
}

void supervisor_state::report(supervisor_report::kind what,
                              const child_record* c, caf::error reason,
                              bool restart) {
  supervisor_report r;
  r.what = what;
  r.supervisor = spec_.name;
  if (c) {
    if (!dynamic())
      r.child_id = c->spec.id;
    // A failed start has no incarnation of its own; other reports name
    // the one that ended.
    if (c->handle)
      r.child = c->handle;
    else if (what != supervisor_report::kind::start_error)
      r.child = c->last_handle;
  }
  r.restart = restart;
  r.reason = std::move(reason);
  auto level = what == supervisor_report::kind::started
                   || what == supervisor_report::kind::shutdown
                   || what == supervisor_report::kind::auto_shutdown
                 ? log_level::info
                 : log_level::error;
  log(level, to_string(r));
  for (auto& s : subscribers_)
    self_->send(s, r);
}

} // namespace relay
