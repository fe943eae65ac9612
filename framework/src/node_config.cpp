#include "relay/node_config.hpp"

#include <caf/config_option_adder.hpp>

namespace relay {

node_config::node_config() {
  opt_group{custom_options_, "relay"}
    .add(node_name, "node-name", "name of this node in logs and handshakes")
    .add(max_frame_size, "max-frame-size", "bound on a frame body in bytes")
    .add(handshake_timeout, "handshake-timeout", "bound on a peer's handshake")
    .add(connect_timeout, "connect-timeout", "bound on connecting to a peer")
    .add(lookup_timeout, "lookup-timeout", "bound on a blocking lookup")
    .add(allow_other_uids, "allow-other-uids",
         "accept uds peers running as another user");
}

} // namespace relay
