#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/weak_intrusive_ptr.hpp>

namespace relay {

/// The actors that contribute to introspection topics beyond the node's own
/// (node::add_introspection_source): supervisors to "tree", the cluster to
/// "names", ... Kept weakly: a source that terminated drops out.
///
/// Thread rules: thread-safe; never calls out while holding its lock.
class introspection_sources {
public:
  /// Adds `source` to `topic` (once; adding it again has no effect).
  void add(const std::string& topic, const caf::actor& source);

  /// The live sources of `topic`, in the order they were added; forgets
  /// those that terminated.
  std::vector<caf::actor> of(const std::string& topic);

  /// Drops every source (node shutdown).
  void clear();

private:
  std::mutex mtx_;
  std::map<std::string, std::vector<caf::weak_actor_ptr>> sources_;
};

} // namespace relay
