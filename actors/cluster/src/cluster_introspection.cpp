// The cluster's answers to introspection: its members for topic "node"
// and its cluster-wide names for topic "names" (relayctl nodes, relayctl
// names). A detached actor of its own, because it asks the cluster and
// registry actors through the module's blocking calls.

#include "cluster_introspection.hpp"

#include <nlohmann/json.hpp>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "relay/cluster.hpp"
#include "relay/detail/json_text.hpp"
#include "relay/node.hpp"

namespace relay::cluster_detail {

namespace {

using json = nlohmann::json;

json members_document(const cluster_module& m) {
  auto members = json::array();
  for (auto& x : m.members())
    members.push_back({{"name", x.name},
                       {"id", caf::to_string(x.node)},
                       {"address", x.address},
                       {"status", to_string(x.status)},
                       {"reachable", x.reachable}});
  return members;
}

json names_document(const cluster_module& m) {
  auto names = json::array();
  for (auto& name : m.registered_names()) {
    auto holder = m.whereis_name(name);
    if (!holder)
      continue; // gone since the list was made
    names.push_back({{"name", name},
                     {"actor", holder.id()},
                     {"node", caf::to_string(holder.node())}});
  }
  return names;
}

} // namespace

caf::actor spawn_cluster_inspector(node& n, const cluster_module& m) {
  auto inspector = n.system().spawn<caf::detached + caf::hidden>(
    [&m](caf::event_based_actor*) -> caf::behavior {
      return {
        [&m](introspect_atom, const std::string& topic,
             const std::string&) -> std::string {
          json doc{{"kind", "cluster"}};
          if (topic == "names")
            doc["names"] = names_document(m);
          else
            doc["members"] = members_document(m);
          // Names come from peers: never throw on bad UTF-8.
          return detail::json_text(doc);
        },
      };
    });
  n.add_introspection_source("node", inspector);
  n.add_introspection_source("names", inspector);
  return inspector;
}

} // namespace relay::cluster_detail
