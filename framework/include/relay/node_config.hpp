#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include <caf/actor_system_config.hpp>
#include <caf/timespan.hpp>

#include "relay/error.hpp"
#include "relay/frame.hpp"
#include "relay/message_registry.hpp"

namespace relay {

/// Thrown by node_config::add_message_type when a registration clashes.
class registration_error : public std::logic_error {
public:
  using std::logic_error::logic_error;
};

/// Configuration of a relay::node. Extends CAF's configuration, so every
/// option can also come from the command line (`--relay.node-name=a`) or a
/// config file, the CAF way:
///
///   relay.node-name          name of this node in logs and handshakes
///   relay.max-frame-size     bound on a frame body in bytes (16 MiB)
///   relay.handshake-timeout  bound on a peer's handshake (5s)
///   relay.connect-timeout    bound on connecting (5s)
///   relay.lookup-timeout     bound on a blocking lookup (10s)
///   relay.allow-other-uids   accept local peers of other users (false)
class node_config : public caf::actor_system_config {
public:
  node_config();

  /// Registers `T` under `name` for remote messaging. Throws
  /// registration_error (naming both parties) if `T` or `name` is taken or
  /// `name`'s wire id clashes with another name's.
  template <class T>
  node_config& add_message_type(std::string name) {
    if (auto err = messages_.add<T>(std::move(name)))
      throw registration_error(relay::describe(err));
    return *this;
  }

  /// Registers `T` under the name given to RELAY_MESSAGE_TYPE.
  template <class T>
  node_config& add_message_type() {
    return add_message_type<T>(type_name<T>::value);
  }

  /// The message types known to this node.
  message_registry& messages() noexcept {
    return messages_;
  }

  const message_registry& messages() const noexcept {
    return messages_;
  }

  std::string node_name;
  size_t max_frame_size = frame_header::default_max_body;
  caf::timespan handshake_timeout = std::chrono::seconds{5};
  caf::timespan connect_timeout = std::chrono::seconds{5};
  caf::timespan lookup_timeout = std::chrono::seconds{10};
  bool allow_other_uids = false;

private:
  message_registry messages_;
};

} // namespace relay
