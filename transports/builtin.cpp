// The one place that lists the transports built into Relay. Adding a
// transport adds one line here.
#include "relay/transport.hpp"

#include "common/reactor.hpp"
#include "shm/shm_transport.hpp"
#include "tcp/tcp_transport.hpp"
#include "uds/uds_transport.hpp"

namespace relay {

void register_builtin_transports(transport_registry& registry,
                                 const transport_options& options) {
  auto io = std::make_shared<reactor>();
  registry.add(std::make_unique<uds_transport>(io, options));
  registry.add(std::make_unique<tcp_transport>(io, options));
  registry.add(std::make_unique<shm_transport>(io, options));
}

} // namespace relay
