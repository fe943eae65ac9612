#pragma once

// Sets the actor system's node id, which CAF 0.17 reserves to its network
// module. Relay occupies that module slot (the one CAF 0.17 keeps for the
// then-experimental libcaf_net, which Debian does not ship) so that local
// and remote actors can be told apart without loading caf::io's middleman.

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/node_id.hpp>

namespace caf::net {

/// The module that gives the actor system Relay's node id. Named as CAF's
/// network module so that actor_system lets it set the id.
class middleman : public caf::actor_system::module {
public:
  explicit middleman(caf::actor_system& sys);

  static caf::actor_system::module* make(caf::actor_system& sys,
                                         caf::detail::type_list<>);

  /// The node id this module assigns: the process id and 20 random bytes.
  static caf::node_id make_local_id();

  void start() override;
  void stop() override;
  void init(caf::actor_system_config& cfg) override;
  id_t id() const override;
  void* subtype_ptr() override;

private:
  caf::actor_system& system_;
};

} // namespace caf::net
