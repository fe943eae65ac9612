#pragma once

// Waiting for a supervisor's reports (supervisor_spec::report_to) in tests
// that drive real supervisors on a real actor system.

#include <chrono>
#include <string>

#include <caf/scoped_actor.hpp>

#include "relay/supervisor_report.hpp"

namespace relay::test {

/// Reads `reports` until child `child_id` is reported started again after
/// a restart; false if no such report came within 10 s of the last one.
inline bool wait_restart(caf::scoped_actor& reports,
                         const std::string& child_id) {
  bool restarted = false;
  bool timed_out = false;
  while (!restarted && !timed_out)
    reports->receive(
      [&](relay::supervisor_report& r) {
        restarted = r.what == relay::supervisor_report::kind::started
                    && r.child_id == child_id && r.restart;
      },
      caf::after(std::chrono::seconds{10}) >> [&] { timed_out = true; });
  return restarted;
}

} // namespace relay::test
