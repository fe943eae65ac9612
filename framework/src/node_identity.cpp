#include "node_identity.hpp"

#include <sys/random.h>
#include <unistd.h>

#include <random>

namespace caf::net {

middleman::middleman(caf::actor_system& sys) : system_(sys) {
  // nop
}

caf::actor_system::module*
middleman::make(caf::actor_system& sys, caf::detail::type_list<>) {
  return new middleman(sys);
}

caf::node_id middleman::make_local_id() {
  caf::node_id::default_data::host_id_type incarnation;
  auto n = getrandom(incarnation.data(), incarnation.size(), 0);
  if (n != static_cast<ssize_t>(incarnation.size())) {
    std::random_device rd;
    for (auto& b : incarnation)
      b = static_cast<uint8_t>(rd());
  }
  return caf::make_node_id(static_cast<uint32_t>(getpid()), incarnation);
}

void middleman::start() {
  // nop
}

void middleman::stop() {
  // nop
}

void middleman::init(caf::actor_system_config&) {
  auto id = make_local_id();
  system_.node_.swap(id);
}

caf::actor_system::module::id_t middleman::id() const {
  return network_manager;
}

void* middleman::subtype_ptr() {
  return this;
}

} // namespace caf::net
