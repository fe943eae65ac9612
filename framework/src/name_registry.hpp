#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/node_id.hpp>

namespace relay {

/// The names a node publishes (node::publish). A name stops resolving when
/// its actor terminates, as Erlang's registered names do.
///
/// Shared (std::shared_ptr) with the functors attached to published actors.
/// Thread rules: thread-safe; never calls out while holding its lock.
class name_registry : public std::enable_shared_from_this<name_registry> {
public:
  /// A published actor and its interface (empty: dynamically typed).
  struct entry {
    caf::strong_actor_ptr handle;
    std::vector<std::string> interface;
  };

  /// Longest name accepted, in bytes.
  static constexpr size_t max_name_size = 256;

  /// `local` is this node: only its actors can be published.
  explicit name_registry(caf::node_id local) : local_(std::move(local)) {
    // nop
  }

  /// Publishes `handle` as `name`. Errors: invalid_argument (null handle,
  /// an actor of another node, empty or over-long name, an actor that
  /// already terminated),
  /// already_registered (name taken by a live actor).
  caf::error publish(caf::strong_actor_ptr handle, std::string name,
                     std::vector<std::string> interface);

  /// Removes `name`. Returns whether it existed.
  bool unpublish(const std::string& name);

  /// The actor published as `name`, if any.
  std::optional<entry> find(const std::string& name) const;

  /// Every name with its entry, sorted by name.
  std::vector<std::pair<std::string, entry>> list() const;

  /// Drops every name (node shutdown).
  void clear();

private:
  /// Removes `name` if it still maps to actor `aid`.
  void on_exit(const std::string& name, caf::actor_id aid);

  const caf::node_id local_;
  mutable std::mutex mtx_;
  std::map<std::string, entry> names_;
};

} // namespace relay
