#pragma once

// OS processes as supervisor children. The parent starts the process with a
// socketpair end inherited as descriptor 3; the child's node connects back
// over it (connect_to_parent) and says when it is ready (notify_ready), as
// systemd's READY=1. On the parent's side the child is a local actor, the
// process actor, that lives exactly as long as the process: a supervisor
// supervises it like any child. See docs/processes.md.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/node_id.hpp>
#include <caf/timespan.hpp>

#include "relay/supervisor.hpp"

namespace relay {

class node;

/// Errors of process children, in the error category "process".
enum class process_errc : uint8_t {
  spawn_failed = 1, ///< the executable could not be started (text: why)
  exited,           ///< the process exited with a status other than 0
  killed,           ///< a signal ended the process (text names it)
  not_ready,        ///< no readiness within the start timeout
  hung,             ///< its channel closed (or its node stopped answering
                    ///< heartbeats) while it still ran; it was killed
  no_parent,        ///< connect_to_parent outside a process child
};

/// "exited", ...
const char* to_string(process_errc x);

/// An error with code `x` and a text saying what happened.
caf::error make_error(process_errc x, std::string what);

/// True if `x` is a process error with code `code`.
bool is(const caf::error& x, process_errc code);

/// How to run one OS process.
struct process_spec {
  /// Path of the executable (not searched in PATH).
  std::string executable;
  /// argv[1..]; argv[0] is `executable`.
  std::vector<std::string> args;
  /// Added to (or replacing in) the parent's environment.
  std::map<std::string, std::string> env;
  /// Working directory; empty: the parent's.
  std::string working_dir;
  /// Bound on the time from spawn to readiness (notify_ready).
  caf::timespan start_timeout = std::chrono::seconds{10};
  /// The inherited channel when parent_uri is empty: "socketpair" (one
  /// Unix socket, descriptor 3 in the child) or "pipe" (two anonymous
  /// pipes, descriptors 3 to read and 4 to write: for children that may
  /// open no sockets).
  std::string channel = "socketpair";
  /// If set, no inherited channel: a URI the parent listens on (e.g.
  /// "shm:///run/app/parent.sock"), to which the child connects.
  std::string parent_uri;
};

/// Message from a process child's node to its process actor: the child is
/// ready. Sent by notify_ready.
using process_ready_atom = caf::atom_constant<caf::atom("procready")>;

/// What the process actor answers to `(process_info_atom)`: the pid and
/// the node the process runs.
using process_info_atom = caf::atom_constant<caf::atom("procinfo")>;

/// A start for a child_spec that runs `spec` as an OS process whose node
/// connects back to `n`. The start succeeds once the process's node has
/// completed the handshake over the inherited channel and called
/// notify_ready, within spec.start_timeout; the child handle is then the
/// process actor, which answers `(process_info_atom)` with `(int32 pid,
/// caf::node_id)` and ends when the process ends:
///
/// - exit status 0: exit_reason::normal; stopped by the supervisor
///   (SIGTERM, then exit 0 or death by SIGTERM): user_shutdown;
/// - another status: process_errc::exited ("exit status 3"); a signal:
///   process_errc::killed ("killed by signal 9 (Killed)");
/// - its channel closes or its node misses heartbeats while the process
///   runs: it is killed (SIGKILL) and ends with process_errc::hung.
///
/// The supervisor's shutdown policy applies: user_shutdown sends SIGTERM
/// and waits; exit_reason::kill (brutal_kill, or the timeout) sends SIGKILL.
/// The process is always reaped (no zombie). Errors of the start:
/// process_errc::spawn_failed, not_ready (the process is killed), and the
/// process's exit before readiness (exited, killed). `n` must outlive the
/// supervisor. Exit is noticed through a pidfd at once.
child_start process_start(node& n, process_spec spec);

/// In a process child: connects `n` to the parent over the inherited
/// channel (RELAY_PARENT in the environment) and arranges that this
/// process dies with its parent (PR_SET_PDEATHSIG with SIGKILL; if the
/// parent is gone already, the process exits). Returns the parent's node
/// id. Errors: process_errc::no_parent (not started by process_start), and
/// connect errors.
caf::expected<caf::node_id> connect_to_parent(node& n);

/// In a process child, after connect_to_parent and once its actors are
/// published: tells the parent this process is ready. Errors: no_parent,
/// and lookup errors.
caf::error notify_ready(node& n);

} // namespace relay
