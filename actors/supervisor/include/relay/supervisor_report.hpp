#pragma once

#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <cereal/types/string.hpp>
#include <caf/error.hpp>

#include "relay/message_registry.hpp"

namespace relay {

/// One event in a supervisor's life, as OTP's SASL progress and supervisor
/// reports carry them. Each is logged through relay::log (info for
/// started, auto_shutdown and shutdown; error otherwise) and sent to the supervisor's subscribers
/// (subscribe_reports_atom).
struct supervisor_report {
  enum class kind : uint8_t {
    /// A child started (OTP's progress report); `restart` says whether it
    /// replaced a terminated incarnation.
    started,
    /// A child terminated by itself: a crash, or a clean exit of a permanent
    /// child (OTP's child_terminated). `reason` is its exit reason.
    child_terminated,
    /// A child's start failed (OTP's start_error); `reason` is the cause.
    start_error,
    /// A child did not stop as asked: it ignored user_shutdown until the
    /// timeout and was killed, or exited with another reason (OTP's
    /// shutdown_error).
    shutdown_error,
    /// More restarts than the intensity allows within the period; the
    /// supervisor stops its children and exits with user_shutdown (OTP's
    /// reached_max_restart_intensity).
    reached_max_restart_intensity,
    /// A significant child terminated and auto_shutdown stops the
    /// supervisor.
    auto_shutdown,
    /// The supervisor stopped its children and exits with `reason`.
    shutdown,
  };
  kind what = kind::started;
  /// The supervisor's name (supervisor_spec::name).
  std::string supervisor;
  /// The child's id; empty for reports about the supervisor itself and for
  /// children of a simple_one_for_one supervisor.
  std::string child_id;
  /// The incarnation concerned, if any.
  caf::actor child;
  bool restart = false;
  caf::error reason;

  template <class Archive>
  void save(Archive& ar) const {
    ar(static_cast<uint8_t>(what), supervisor, child_id, child, restart,
       reason);
  }

  template <class Archive>
  void load(Archive& ar) {
    uint8_t tag = 0;
    ar(tag, supervisor, child_id, child, restart, reason);
    if (tag > static_cast<uint8_t>(kind::shutdown))
      throw wire_error("invalid supervisor report kind " + std::to_string(tag));
    what = static_cast<kind>(tag);
  }
};

/// "started", "child_terminated", ...
const char* to_string(supervisor_report::kind x);

/// One line for logs: "supervisor 'app': child 'db' terminated: <reason>".
std::string to_string(const supervisor_report& x);

} // namespace relay

RELAY_MESSAGE_TYPE(relay::supervisor_report, "relay.supervisor.report")
