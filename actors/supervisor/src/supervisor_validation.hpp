#pragma once

#include <vector>

#include <caf/error.hpp>

#include "relay/supervisor.hpp"

namespace relay {

/// Checks `child` against OTP's rules for a child of a supervisor with
/// `sup` (check_childspec, validSignificant): an id (except for a
/// simple_one_for_one template), a start, significant only for transient or
/// temporary children and only with auto_shutdown, a name only with a node.
/// Returns invalid_child_spec naming the child and the rule, or none.
caf::error validate_child(const supervisor_spec& sup, const child_spec& child);

/// Checks the supervisor's own flags and its initial children (OTP's
/// supervisor_data and duplicate_child_name checks).
caf::error validate_supervisor(const supervisor_spec& sup,
                               const std::vector<child_spec>& children);

} // namespace relay
