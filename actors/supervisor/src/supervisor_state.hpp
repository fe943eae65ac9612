#pragma once

// The supervisor actor's state: OTP's supervisor.erl as an event-driven
// state machine. Internal; the contract is in relay/supervisor.hpp.
//
// OTP's supervisor blocks inside a restart or a shutdown (a selective
// receive for the child's DOWN). A CAF actor must not block, so each such
// step is an operation: while one runs (busy_), every other input (a
// child's exit, a management call, a retry) waits in shared_->deferred and runs
// after it, in arrival order; the DOWN and timer messages the operation
// itself waits for are handled at once. This gives OTP's order of events
// without blocking a scheduler thread.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include "relay/supervisor.hpp"

namespace relay {

using init_atom = caf::atom_constant<caf::atom("supinit")>;
using shutdown_timer_atom = caf::atom_constant<caf::atom("suptimeout")>;
using try_again_atom = caf::atom_constant<caf::atom("suptryagai")>;
using delayed_restart_atom = caf::atom_constant<caf::atom("supdelayed")>;

/// One child spec and its current incarnation.
struct child_record {
  enum class state { undefined, running, restarting };
  child_spec spec;
  /// For children of a simple_one_for_one supervisor: start_child's args.
  caf::message extra;
  caf::actor handle;
  /// The latest incarnation (also after it ended), for reports.
  caf::actor last_handle;
  /// The address of the latest incarnation (also after it ended).
  caf::actor_addr last_addr;
  /// The latest incarnation ended and that exit waits its turn: the child
  /// counts as running for management calls, as in OTP until it handles
  /// the EXIT.
  bool exit_pending = false;
  /// Counts incarnations; a deferred exit of an older one is ignored.
  uint64_t incarnation = 0;
  /// Why the latest incarnation ended.
  caf::error last_exit;
  state st = state::undefined;
  /// Serial of this record; keys retries and delayed restarts.
  uint64_t serial = 0;
  /// Bumped whenever a pending restart must be forgotten (terminate_child,
  /// delete_child, a new start).
  uint64_t restart_epoch = 0;
  /// When the current incarnation started (restart back-off reset).
  caf::actor_clock::time_point started_at;
  uint32_t backoff_attempt = 0;
  /// Restarts of this child (each counts toward the intensity).
  uint64_t restarts = 0;
};

using child_ptr = std::shared_ptr<child_record>;

class supervisor_state {
public:
  using self_ptr = caf::stateful_actor<supervisor_state>*;

  static inline const char* name = "relay.supervisor";

  supervisor_state(self_ptr self) : self_(self) {
    // nop
  }

  caf::behavior make_behavior(supervisor_spec spec,
                              std::vector<child_spec> children);

  /// This supervisor's level of the tree as a JSON document, for
  /// introspection (supervisor_introspection.cpp).
  std::string introspect() const;

private:
  // -- operations (one at a time; see the file comment) ----------------------------

  using done_fn = std::function<void()>;
  using start_done_fn = std::function<void(caf::error)>;
  using group_done_fn = std::function<void(caf::error, child_ptr failed)>;

  /// Runs `run` now, or after the running operation; `cancel` runs instead
  /// if the supervisor terminates first.
  void post(std::function<void()> run, std::function<void()> cancel = nullptr);

  /// A `cancel` for post that fails the request behind `rp`.
  std::function<void()> cancel_with(caf::response_promise rp);

  void begin_op();
  void end_op();

  /// Starts `c`; `done` gets none (started, or ignored: state undefined) or
  /// the start_failed error, reported as start_error if `report_error`.
  void start_one(const child_ptr& c, bool restart, bool report_error,
                 start_done_fn done);

  /// Starts `cs[i..]` in order; stops at the first failure and passes it on
  /// with the child that failed (the ones before stay started).
  void start_each(std::vector<child_ptr> cs, size_t i, bool restart,
                  group_done_fn done);

  /// Stops `c`'s incarnation by its shutdown policy; at once if it does not
  /// run (a pending restart is dropped).
  void stop_one(const child_ptr& c, done_fn done);

  /// Stops `cs` one at a time, in the order given.
  void stop_each(std::vector<child_ptr> cs, done_fn done);

  /// Stops every child of a simple_one_for_one supervisor at once, under one
  /// timer (the template's shutdown), as OTP's terminate_dynamic_children.
  void stop_all_at_once(done_fn done);

  struct pending_stop {
    child_ptr child;
    shutdown_policy policy;
    uint64_t timer = 0;
    bool killed_after_timeout = false;
    done_fn done;
  };

  void on_down(caf::down_msg& dm);
  void on_shutdown_timer(uint64_t timer);
  void finish_stop(pending_stop& pending, const caf::error& reason);

  // -- OTP's logic ----------------------------------------------------------------

  void init();
  void on_child_exit(const child_ptr& c, caf::error reason);
  void restart(const child_ptr& c);
  void restart_now(const child_ptr& c);
  void restart_group(std::vector<child_ptr> group);
  void retry_later(const child_ptr& c);
  /// Adds a restart at now; false if that exceeds the intensity.
  bool add_restart();
  void del_child(const child_ptr& c);
  void maybe_auto_shutdown(const child_ptr& c);
  void shutdown(caf::error reason);
  void quit(caf::error reason);

  // -- management calls -------------------------------------------------------------

  void start_child(child_spec spec, caf::response_promise rp);
  void start_dynamic_child(caf::message args, caf::response_promise rp);
  void terminate_child(const std::string& id, caf::response_promise rp);
  void terminate_dynamic_child(const caf::actor& child, caf::response_promise rp);
  void restart_child(const std::string& id, caf::response_promise rp);
  void delete_child(const std::string& id, caf::response_promise rp);
  /// not_found, running, restarting or simple_one_for_one, or none.
  caf::error check_idle(const std::string& id, const child_ptr& c,
                        const char* what) const;
  std::vector<child_info> which_children() const;
  child_counts count_children() const;

  // -- helpers ----------------------------------------------------------------------

  bool dynamic() const noexcept {
    return spec_.strategy == restart_strategy::simple_one_for_one;
  }
  child_ptr find(const std::string& id) const;
  child_ptr find_serial(uint64_t serial) const;
  bool contains(const child_ptr& c) const;
  void forget(const child_ptr& c);
  std::string describe_child(const child_record& c) const;
  void report(supervisor_report::kind what, const child_record* c,
              caf::error reason = caf::error{}, bool restart = false);
  caf::timespan restart_delay(child_record& c);

  self_ptr self_;
  supervisor_spec spec_;
  /// The template of a simple_one_for_one supervisor.
  child_spec template_;
  /// Static children in start order; dynamic children in start order.
  std::vector<child_ptr> children_;
  /// Running children by address (DOWN messages name the address).
  std::map<caf::actor_addr, child_ptr> by_addr_;
  struct deferred_call {
    std::function<void()> run;
    std::function<void()> cancel;
  };
  /// What must be cleaned up however the supervisor ends (also by
  /// exit_reason::kill or an exception, when the state is gone): shared
  /// with the functor attached to the supervisor.
  struct shared_part {
    /// Children alive now; they get the supervisor's exit reason.
    std::map<caf::actor_addr, caf::actor> live;
    /// wait_started requests; they get the exit reason.
    std::vector<caf::response_promise> waiting_start;
    /// Calls not run yet; they are cancelled (their requests fail).
    std::deque<deferred_call> deferred;
  };
  std::shared_ptr<shared_part> shared_ = std::make_shared<shared_part>();
  /// Restart times within the period, oldest first (OTP's restarts).
  std::deque<caf::actor_clock::time_point> restarts_;
  /// Every restart since the start, for introspection.
  uint64_t total_restarts_ = 0;
  uint64_t next_serial_ = 1;

  bool busy_ = false;
  bool draining_ = false;
  bool started_ = false;
  bool stopping_ = false;

  /// Children whose DOWN an operation waits for.
  std::map<caf::actor_addr, pending_stop> stopping_children_;
  uint64_t next_timer_ = 1;

  std::vector<caf::actor> subscribers_;
  std::minstd_rand rng_;
};

} // namespace relay
