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
/// Thrown by relay::node when its configuration is unsafe or unusable, e.g.
/// a cookie file that group or others can read. The text says what and how
/// to fix it.
class config_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

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
///   relay.cookie-file        secret that authenticates tcp peers (mode 0600;
///                            else $RELAY_COOKIE)
///   relay.tcp-insecure       run tcp without authentication (false)
///   relay.shm-ring-size      bytes of each shm ring (1 MiB)
///   relay.shm-spin           how long an shm reader spins before it sleeps
///                            (20us)
///
/// One CAF default differs: work-stealing.moderate-poll-attempts is 0 (see
/// node_config.cpp for why).
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
  /// File holding the shared secret that authenticates tcp peers. Must not
  /// be readable by group or others. Unset: the RELAY_COOKIE environment
  /// variable, if set, is the secret.
  std::string cookie_file;
  /// shm: bytes of each ring of a connection (one per direction), a power
  /// of two from 4 KiB to 256 MiB.
  size_t shm_ring_size = size_t{1} << 20;
  /// shm: how long a reader spins on an empty ring before it sleeps.
  caf::timespan shm_spin = std::chrono::microseconds{20};
  /// Run the receiving actor on the I/O thread that read its message, not
  /// on a scheduler worker: one thread wake-up less per message (see
  /// docs/benchmarks.md). Off by default: an actor that blocks then stalls
  /// every connection of the node.
  bool deliver_on_io_thread = false;
  /// Run tcp without authentication. Off by default, and only for trusted
  /// networks: anyone who can reach the port can then talk to the node.
  bool tcp_insecure = false;

  /// The environment variable read when cookie_file is unset.
  static constexpr const char* cookie_env = "RELAY_COOKIE";

  /// Shortest secret accepted, in bytes.
  static constexpr size_t min_secret_size = 16;

  /// Reads the secret: from cookie_file, else from $RELAY_COOKIE, else "".
  /// Trailing whitespace (a final newline) is not part of it. Throws
  /// config_error if the file cannot be read, is readable by group or
  /// others, or the secret is shorter than 16 bytes.
  std::string load_secret() const;

private:
  message_registry messages_;
};

} // namespace relay
