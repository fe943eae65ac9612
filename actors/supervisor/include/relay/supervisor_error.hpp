#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>

namespace relay {

/// Errors of supervisors, in the error category "supervisor"; the names are
/// OTP's error terms. relay::describe renders them as
/// "supervisor.not_found: no child 'db' in supervisor 'app'".
enum class supervisor_errc : uint8_t {
  already_started = 1,     ///< start_child: a child with that id runs
  already_present,         ///< start_child: a spec with that id exists
  running,                 ///< restart/delete_child: the child runs
  restarting,              ///< restart/delete_child: a restart is pending
  not_found,               ///< no child with that id (or handle)
  simple_one_for_one,      ///< call not valid for a simple_one_for_one
                           ///< supervisor, or valid only for one
  start_failed,            ///< a child's start function failed or threw
  failed_to_start_child,   ///< the supervisor's own start failed; the
                           ///< text names the child and the cause
  invalid_child_spec,      ///< a child spec breaks a rule (text says which)
  invalid_supervisor_spec, ///< the supervisor spec breaks a rule
};

/// The highest code of supervisor_errc.
constexpr supervisor_errc supervisor_errc_last
  = supervisor_errc::invalid_supervisor_spec;

/// Category of supervisor_errc in caf::error.
constexpr caf::atom_value supervisor_error_category = caf::atom("supervisor");

/// "not_found", ...
const char* to_string(supervisor_errc x);

/// An error with code `x` and a text saying what happened.
caf::error make_error(supervisor_errc x, std::string what);

/// True if `x` is a supervisor error with code `code`.
bool is(const caf::error& x, supervisor_errc code);

} // namespace relay
