#pragma once

#include <caf/actor.hpp>

namespace relay {
class node;
class cluster_module;
} // namespace relay

namespace relay::cluster_detail {

/// Spawns the actor that answers introspection for `m` (members under
/// topic "node", cluster-wide names under "names") and registers it with
/// `n`. `m` must outlive it; the module stops it (send_exit, wait_for).
caf::actor spawn_cluster_inspector(node& n, const cluster_module& m);

} // namespace relay::cluster_detail
