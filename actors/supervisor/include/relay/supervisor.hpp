#pragma once

// Supervisors with Erlang/OTP's semantics (lib/stdlib/src/supervisor.erl),
// configured by data: a supervisor_spec and child_specs. See
// docs/supervision.md for each rule beside OTP's and Akka's.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>
#include <caf/node_id.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include "relay/message_registry.hpp"
#include "relay/node.hpp"
#include "relay/supervisor_error.hpp"
#include "relay/supervisor_report.hpp"

namespace relay {

class node;
class node_config;

/// When a terminated child is restarted (OTP's restart types).
enum class restart_type : uint8_t {
  /// Always restarted, even after a clean exit.
  permanent,
  /// Restarted only after a crash: any exit reason other than
  /// exit_reason::normal and exit_reason::user_shutdown (OTP's normal and
  /// shutdown). exit_reason::kill is a crash.
  transient,
  /// Never restarted; its spec is deleted when it terminates.
  temporary,
};

/// What a child is, for which_children/count_children and its default
/// shutdown (OTP's worker / supervisor).
enum class child_type : uint8_t { worker, supervisor };

/// How a supervisor restarts its children (OTP's strategies).
enum class restart_strategy : uint8_t {
  /// Restart only the child that terminated.
  one_for_one,
  /// Terminate all other children (reverse start order), then start all.
  one_for_all,
  /// Terminate the children started after the one that terminated
  /// (reverse order), then start it and them again in order.
  rest_for_one,
  /// One template child spec; children are added at run time with
  /// start_child(args) and behave as one_for_one children of that spec
  /// (OTP's simple_one_for_one).
  simple_one_for_one,
};

/// When significant children make the supervisor stop itself (OTP 24's
/// auto_shutdown).
enum class auto_shutdown : uint8_t {
  /// Significant children are not allowed.
  never,
  /// Stop (exit_reason::user_shutdown) when any significant child
  /// terminates by itself and is not restarted.
  any_significant,
  /// Stop when every significant child has terminated that way.
  all_significant,
};

/// How a supervisor stops a child (OTP's shutdown values).
struct shutdown_policy {
  enum class kind : uint8_t {
    /// exit_reason::kill at once.
    brutal_kill,
    /// exit_reason::user_shutdown, then exit_reason::kill after `timeout`.
    timeout,
    /// exit_reason::user_shutdown, then wait as long as it takes.
    infinity,
  };
  kind how = kind::timeout;
  /// For kind::timeout; the wait on the actor clock.
  caf::timespan timeout = std::chrono::seconds{5};

  static shutdown_policy brutal_kill() {
    return {kind::brutal_kill, caf::timespan{0}};
  }
  static shutdown_policy after(caf::timespan t) {
    return {kind::timeout, t};
  }
  static shutdown_policy infinity() {
    return {kind::infinity, caf::timespan{0}};
  }
};

/// Delay before restarting a child, growing with each consecutive restart
/// (Akka's BackoffSupervisor): attempt n (from 0) waits
/// min(max_delay, min_delay * factor^n), plus a random extra of up to
/// `random_factor` times that. The attempt count returns to 0 once an
/// incarnation has run for `reset_after`. Timers run on the actor clock.
/// Beyond OTP, where restarts are immediate.
struct backoff {
  caf::timespan min_delay = caf::timespan{0};
  caf::timespan max_delay = caf::timespan{0};
  double factor = 2.0;
  /// In [0, 1]; 0 makes the delays deterministic.
  double random_factor = 0.2;
  /// 0 means max_delay.
  caf::timespan reset_after = caf::timespan{0};

  /// Whether any delay applies.
  bool enabled() const noexcept {
    return min_delay.count() > 0;
  }

  /// The delay of attempt `n` before the random extra.
  caf::timespan delay(uint32_t n) const noexcept;
};

/// Starts one incarnation of a child, in the supervisor's context (OTP's
/// {M, F, A}). Either synchronous: returns the child, a null handle for
/// OTP's `ignore` (the child is not started and not an error), or an error;
/// or asynchronous: calls `done` exactly once, later, with the same. A start
/// that throws fails with an error naming the exception.
///
/// `extra` holds the arguments given to start_child of a
/// simple_one_for_one supervisor (empty otherwise), as OTP appends them.
/// Starting an actor on another node is asynchronous (see remote_start
/// below).
class child_start {
public:
  using result = caf::expected<caf::actor>;
  using sync_fn = std::function<result(caf::actor_system&, const caf::message& extra)>;
  using reply = std::function<void(result)>;
  using async_fn
    = std::function<void(caf::event_based_actor* self, const caf::message& extra,
                         reply done)>;

  child_start() = default;

  /// From a callable taking `(caf::actor_system&)` or
  /// `(caf::actor_system&, const caf::message&)` and returning a handle
  /// (caf::actor or typed) or a caf::expected of one.
  template <class F, class = std::enable_if_t<
                       !std::is_same<std::decay_t<F>, child_start>::value>>
  child_start(F f) : sync_(wrap(std::move(f))) {
    // nop
  }

  /// An asynchronous start.
  static child_start async(async_fn f) {
    child_start result;
    result.async_ = std::move(f);
    return result;
  }

  /// Runs the start; `done` is called once, possibly before this returns.
  void operator()(caf::event_based_actor* self, const caf::message& extra,
                  reply done) const;

  explicit operator bool() const noexcept {
    return sync_ || async_;
  }

private:
  template <class H>
  static result to_result(H&& h) {
    using T = std::decay_t<H>;
    if constexpr (std::is_same<T, caf::actor>::value) {
      return result{std::forward<H>(h)};
    } else if constexpr (caf::detail::is_expected<T>::value) {
      if (!h)
        return result{h.error()};
      return to_result(std::move(*h));
    } else {
      return result{caf::actor_cast<caf::actor>(std::forward<H>(h))};
    }
  }

  template <class F>
  static sync_fn wrap(F f) {
    return [f = std::move(f)](caf::actor_system& sys,
                              const caf::message& extra) -> result {
      if constexpr (std::is_invocable<F&, caf::actor_system&,
                                      const caf::message&>::value)
        return to_result(f(sys, extra));
      else
        return to_result(f(sys));
    };
  }

  sync_fn sync_;
  async_fn async_;
};

/// One child of a supervisor (OTP's child spec, plus a name and a restart
/// delay).
struct child_spec {
  /// Unique among the supervisor's children; names the child in errors and
  /// reports. Ignored for the template of a simple_one_for_one supervisor.
  std::string id;
  child_start start;
  restart_type restart = restart_type::permanent;
  /// Unset: infinity for child supervisors, 5 s for workers (OTP's defaults).
  std::optional<shutdown_policy> shutdown;
  child_type type = child_type::worker;
  /// Whether this child's own termination may stop the supervisor (see
  /// auto_shutdown); only for transient and temporary children.
  bool significant = false;
  /// If set, each incarnation is published under this name on the
  /// supervisor's node (supervisor_spec::node must be set) and the name
  /// resolves to the new incarnation after a restart. It is withdrawn when
  /// the incarnation terminates.
  std::string name;
  /// Optional delay before each restart.
  backoff restart_delay;

  /// The effective shutdown policy.
  shutdown_policy effective_shutdown() const {
    if (shutdown)
      return *shutdown;
    return type == child_type::supervisor ? shutdown_policy::infinity()
                                          : shutdown_policy::after(
                                            std::chrono::seconds{5});
  }
};

/// A supervisor's own settings (OTP's sup flags).
struct supervisor_spec {
  /// For logs and reports; "supervisor-<actor id>" if empty.
  std::string name;
  restart_strategy strategy = restart_strategy::one_for_one;
  /// More than `intensity` restarts within `period` make the supervisor stop
  /// its children and exit with exit_reason::user_shutdown (OTP's
  /// MaxR = 1, MaxT = 5 s by default). A restart at time t counts while
  /// now - t <= period (OTP keeps restarts with T >= Now - Period).
  uint32_t intensity = 1;
  caf::timespan period = std::chrono::seconds{5};
  enum auto_shutdown auto_shutdown = auto_shutdown::never;
  /// The node, for children with a name (publish) and remote children.
  /// Must outlive the supervisor. Optional otherwise.
  relay::node* node = nullptr;
  /// Seed of the restart delays' random extra (deterministic tests).
  uint64_t seed = 0;
  /// Receives every supervisor_report from the first start on (later
  /// subscribers miss the reports of the initial start).
  caf::actor report_to;
};

// -- management interface ----------------------------------------------------------

using start_child_atom = caf::atom_constant<caf::atom("startchild")>;
using terminate_child_atom = caf::atom_constant<caf::atom("termchild")>;
using restart_child_atom = caf::atom_constant<caf::atom("restartch")>;
using delete_child_atom = caf::atom_constant<caf::atom("deletechil")>;
using which_children_atom = caf::atom_constant<caf::atom("whichchild")>;
using count_children_atom = caf::atom_constant<caf::atom("countchild")>;
using subscribe_reports_atom = caf::atom_constant<caf::atom("subreports")>;
using unsubscribe_reports_atom = caf::atom_constant<caf::atom("unsubrepor")>;
using wait_started_atom = caf::atom_constant<caf::atom("waitstart")>;
/// The answer of calls that answer OTP's `ok`.
using ok_atom = caf::atom_constant<caf::atom("ok")>;

/// What which_children reports per child (OTP's {Id, Child, Type, Modules}).
struct child_info {
  enum class status : uint8_t {
    running,    ///< `handle` is the current incarnation
    restarting, ///< a restart is pending (failed start or restart delay)
    undefined,  ///< not running (terminated, ignored or not yet started)
  };
  /// Empty for children of a simple_one_for_one supervisor.
  std::string id;
  caf::actor handle;
  status state = status::undefined;
  child_type type = child_type::worker;

  template <class Archive>
  void save(Archive& ar) const {
    ar(id, handle, static_cast<uint8_t>(state), static_cast<uint8_t>(type));
  }

  template <class Archive>
  void load(Archive& ar) {
    uint8_t s = 0;
    uint8_t t = 0;
    ar(id, handle, s, t);
    if (s > static_cast<uint8_t>(status::undefined)
        || t > static_cast<uint8_t>(child_type::supervisor))
      throw wire_error("invalid child_info status or type");
    state = static_cast<status>(s);
    type = static_cast<child_type>(t);
  }
};

/// What count_children reports (OTP's proplist).
struct child_counts {
  uint64_t specs = 0;
  uint64_t active = 0;
  uint64_t supervisors = 0;
  uint64_t workers = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(specs, active, supervisors, workers);
  }
};

/// The management interface of every supervisor, usable through a remote
/// handle (register the types with add_supervisor_types). Answers and errors
/// are OTP's (see supervisor_errc):
///
/// - `(start_child_atom, child_spec)` -> the child (null if its start
///   ignored it). Errors: already_started (running, the error names it),
///   already_present (a spec with that id exists), start_failed, simple
///   (on a simple_one_for_one supervisor), invalid_child_spec. Local only:
///   a child_spec holds functions.
/// - `(start_child_atom, caf::message args)` -> the child, on a
///   simple_one_for_one supervisor: the template's start gets `args`. From
///   another node, send `(start_child_atom, args...)` on a caf::actor handle
///   (a caf::message does not cross the wire). Errors: start_failed, not
///   simple on other strategies.
/// - `(terminate_child_atom, id)` -> ok_atom: stops the child by its shutdown
///   policy and keeps its spec (temporary children: deletes it). Errors:
///   not_found, simple.
/// - `(terminate_child_atom, caf::actor)` -> ok_atom, on simple_one_for_one.
///   Errors: not_found.
/// - `(restart_child_atom, id)` -> the child: starts a child that is not
///   running; not counted as a restart. Errors: running, restarting,
///   not_found, start_failed, simple.
/// - `(delete_child_atom, id)` -> ok_atom. Errors: running, restarting,
///   not_found, simple.
/// - `(which_children_atom)`, `(count_children_atom)`.
/// - `(subscribe_reports_atom, caf::actor)`: the actor receives every
///   supervisor_report of this supervisor from now on; unsubscribe with
///   `unsubscribe_reports_atom`. Subscribers are monitored and dropped when
///   they terminate.
/// - `(wait_started_atom)` -> ok_atom once the supervisor has started its
///   children; fails with the start error if it could not.
/// - `(introspect_atom, topic, args)` -> its level of the tree as JSON
///   (relayctl tree; docs/operations.md), at once. A supervisor whose
///   spec names a node registers itself there for topic "tree". Not in
///   the typed interface below (so typed lookups of supervisors do not
///   depend on it): send it through a caf::actor handle.
///
/// Thread rules: calls are messages; a supervisor handles one at a time,
/// after any restart or shutdown in progress, as OTP's does.
using supervisor_actor = caf::typed_actor<
  caf::replies_to<start_child_atom, child_spec>::with<caf::actor>,
  caf::replies_to<start_child_atom, caf::message>::with<caf::actor>,
  caf::replies_to<terminate_child_atom, std::string>::with<ok_atom>,
  caf::replies_to<terminate_child_atom, caf::actor>::with<ok_atom>,
  caf::replies_to<restart_child_atom, std::string>::with<caf::actor>,
  caf::replies_to<delete_child_atom, std::string>::with<ok_atom>,
  caf::replies_to<which_children_atom>::with<std::vector<child_info>>,
  caf::replies_to<count_children_atom>::with<child_counts>,
  caf::reacts_to<subscribe_reports_atom, caf::actor>,
  caf::reacts_to<unsubscribe_reports_atom, caf::actor>,
  caf::replies_to<wait_started_atom>::with<ok_atom>>;

/// Spawns a supervisor that starts `children` in order. The start happens
/// in the supervisor: if a child's start fails, the children already started
/// are stopped in reverse order and the supervisor exits with a
/// failed_to_start_child error naming the child and the cause (seen by
/// monitors, and by `wait_started_atom` requests). Returns
/// invalid_child_spec/invalid_supervisor_spec errors (duplicate ids, a
/// significant permanent child, significant children with
/// auto_shutdown::never, a simple_one_for_one supervisor without exactly
/// one spec, a named child without a node) at once, without spawning.
///
/// The supervisor monitors its children (CAF links would make a killed
/// child kill it) and, when it terminates for any reason, sends its exit
/// reason to the children still alive, so none outlives it. An exit
/// message it receives (other than exit_reason::normal) makes it stop its
/// children in reverse order and exit with that reason, as OTP's supervisor
/// does when its parent exits.
caf::expected<supervisor_actor>
spawn_supervisor(caf::actor_system& sys, supervisor_spec spec,
                 std::vector<child_spec> children);

/// A child spec for a nested supervisor: started by spawn_supervisor and
/// awaited until it has started its own children (a failure there is this
/// child's start failure, as in OTP). type is child_type::supervisor and
/// shutdown infinity.
child_spec supervisor_child(std::string id, supervisor_spec spec,
                            std::vector<child_spec> children);

/// A start that spawns actor type `type` (registered with add_actor_type
/// there) from `args` on the node at `uri`, or on connected node `id`,
/// through `n` (node::spawn_actor). The arguments given to start_child of a
/// simple_one_for_one supervisor are appended to `args`. The child is
/// supervised like a local one: its crash is a crash, and the loss of its
/// node (connection lost, heartbeat timeout) ends it with
/// exit_reason::remote_link_unreachable, a crash. Its node stops it when
/// this node goes down. `n` must outlive the supervisor.
child_start remote_start(node& n, std::string uri, std::string type,
                         caf::message args = caf::message{});
child_start remote_start(node& n, caf::node_id id, std::string type,
                         caf::message args = caf::message{});

/// Makes an exception that escapes a message handler of `self` end the
/// actor with caf::sec::runtime_error naming the exception's type and
/// what() ("std::runtime_error: disk full"), so that supervisor reports say
/// what failed; CAF's default handler ends it with a bare runtime_error and
/// prints the text to stderr. Call it first in the actor's behavior
/// function; only the actor itself may call it.
void name_exceptions(caf::scheduled_actor* self);

/// Registers the management interface's types (child_info, child_counts,
/// supervisor_report) on `cfg` under "relay.supervisor.*", so supervisors
/// can be managed and observed from other nodes.
void add_supervisor_types(node_config& cfg);

} // namespace relay

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::child_spec)
RELAY_MESSAGE_TYPE(relay::child_info, "relay.supervisor.child_info")
RELAY_MESSAGE_TYPE(std::vector<relay::child_info>,
                   "relay.supervisor.child_infos")
RELAY_MESSAGE_TYPE(relay::child_counts, "relay.supervisor.child_counts")
