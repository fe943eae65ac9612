#pragma once

// A deployment: a supervisor of OS processes described in a TOML file
// (docs/processes.md has the format). Read with load_deployment, turned
// into child specs with deployment_children, run by relay-run or by a
// program of its own.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "relay/process_child.hpp"
#include "relay/supervisor.hpp"

namespace relay {

class node;

/// One [[process]] entry.
struct deployment_process {
  std::string id;
  process_spec spec;
  /// "socketpair" (default) or "pipe": inherited; "uds" / "shm": the child
  /// connects to the parent's endpoint of that scheme.
  std::string channel = "socketpair";
  restart_type restart = restart_type::permanent;
  std::optional<shutdown_policy> shutdown;
  /// How many such processes; ids get "-1", "-2", ... if more than one.
  size_t count = 1;
};

/// A parsed deployment file.
struct deployment {
  /// The [supervisor] table: name, strategy, intensity, period.
  supervisor_spec supervisor;
  std::vector<deployment_process> processes;
  /// The file it came from (for messages).
  std::string source;

  /// The channel schemes other than "socketpair" that some process uses
  /// ("uds", "shm"): the parent must listen on an endpoint of each.
  std::vector<std::string> endpoint_channels() const;
};

/// Limits on a deployment file.
struct deployment_limits {
  static constexpr size_t max_processes = 1024;
  static constexpr size_t max_count = 256;
};

/// Reads and checks the deployment at `path`: TOML syntax, known keys only,
/// the type and range of every value, unique ids, an executable that exists
/// and may be run. Relative executables and working directories are
/// resolved against the file's directory. Errors (errc::invalid_argument)
/// read "<file>:<line>:<column>: <key>: <problem>", before anything starts.
caf::expected<deployment> load_deployment(const std::string& path);

/// The same for `text`, named `source` in errors; relative paths resolve
/// against `base_dir`.
caf::expected<deployment> parse_deployment(std::string_view text,
                                           const std::string& source,
                                           const std::string& base_dir);

/// Child specs for `d`'s processes in file order (count expanded), started
/// through `n`. `endpoints` maps a channel scheme ("uds", "shm") to the URI
/// the parent listens on for it. Errors: a channel without an endpoint.
caf::expected<std::vector<child_spec>>
deployment_children(node& n, const deployment& d,
                    const std::vector<std::pair<std::string, std::string>>& endpoints);

} // namespace relay
