#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include <memory>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/config_option_adder.hpp>
#include <caf/timespan.hpp>

#include "relay/error.hpp"
#include "relay/frame.hpp"
#include "relay/message_registry.hpp"
#include "relay/node_module.hpp"

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

/// What a peer that connected to a listener may do (after authenticating,
/// which every peer does). The model follows Akka's untrusted mode; see
/// docs/security.md.
enum class trust_level {
  /// Everything: messages of any type, links, module frames (cluster
  /// membership), remote spawn. The default: within one machine the uid
  /// check, and across machines the shared secret, already say "one of us".
  trusted,
  /// Ordinary messages and requests, lookups, monitors (and the DOWN
  /// notices of its own actors). Dropped, counted in
  /// node_stats::untrusted_drops and logged: messages carrying exit_msg or
  /// down_msg (so it can stop no actor, not even with exit_reason::kill),
  /// link and unlink frames, frames of modules (e.g. cluster gossip); a
  /// request among them is answered with errc::forbidden. Remote spawn is
  /// refused with errc::forbidden.
  untrusted,
};

/// Configuration of a relay::node. Extends CAF's configuration, so every
/// option can also come from the command line (`--relay.node-name=a`) or a
/// config file, the CAF way:
///
///   relay.node-name           name of this node in logs and handshakes
///   relay.max-frame-size      bound on a frame body in bytes (16 MiB)
///   relay.handshake-timeout   bound on a peer's handshake (5s)
///   relay.connect-timeout     bound on connecting (5s)
///   relay.lookup-timeout      bound on a blocking lookup (10s)
///   relay.spawn-timeout       bound on the answer to a remote spawn (10s)
///   relay.allow-remote-spawn  let peers spawn the types registered with
///                             add_actor_type (true)
///   relay.heartbeat-interval  idle time after which a connection carries a
///                             heartbeat (500ms)
///   relay.heartbeat-timeout   silence after which a connection is closed
///                             and its node reported down (2s)
///   relay.allow-other-uids    accept local peers of other users (false)
///   relay.cookie-file         secret that authenticates peers on transports
///                             that authenticate (mode 0600; else
///                             $RELAY_COOKIE)
///   relay.deliver-on-io-thread  run receiving actors on the I/O thread
///   relay.max-queued-bytes    bound on a connection's outbound queue (16 MiB)
///   relay.max-inbound-bytes   bound on a peer's delivered, unprocessed
///                             messages before reading pauses (16 MiB)
///   relay.resume              resume broken connections (true)
///   relay.resume-buffer       bound on the bytes a session keeps for
///                             resending (32 MiB)
///   relay.hidden              connect as a hidden node (false)
///   relay.metrics.listen      HOST:PORT of the metrics endpoint (off)
///
/// Each transport declares its own options under relay.<scheme>.* (see the
/// transport's header and docs/), and each module under its own category.
///
/// One CAF default differs: work-stealing.moderate-poll-attempts is 0 (see
/// node_config.cpp for why).
class node_config : public caf::actor_system_config {
public:
  node_config();

  ~node_config() override;

  /// Registers `T` under `name` for remote messaging. Throws
  /// registration_error (naming both parties) if `T` or `name` is taken or
  /// `name`'s wire id clashes with another name's. `json`: the type opts
  /// into JSON for tools such as `relayctl call` (pass
  /// relay::json_codec_for<T>() from relay/json_codec.hpp).
  template <class T>
  node_config& add_message_type(std::string name, json_codec json = {}) {
    if (auto err = messages_.add<T>(std::move(name), json))
      throw registration_error(relay::describe(err));
    return *this;
  }

  /// Registers `T` under the name given to RELAY_MESSAGE_TYPE.
  template <class T>
  node_config& add_message_type(json_codec json = {}) {
    return add_message_type<T>(type_name<T>::value, json);
  }

  /// The message types known to this node.
  message_registry& messages() noexcept {
    return messages_;
  }

  const message_registry& messages() const noexcept {
    return messages_;
  }

  /// Adds a module, constructed from `xs`, and calls its configure(). The
  /// node made from this configuration starts it. Returns the module, which
  /// lives as long as this configuration.
  template <class Module, class... Ts>
  Module& add_module(Ts&&... xs) {
    auto ptr = std::make_shared<Module>(std::forward<Ts>(xs)...);
    add_module_impl(ptr);
    return *ptr;
  }

  /// Sets option `name` to `value` the way the command line or a config
  /// file would, at any depth (e.g. "relay.shm.ring-size"; CAF 0.17's set()
  /// takes only two-level names). Read back with caf::get_or.
  template <class T>
  node_config& set_option(caf::string_view name, T&& value) {
    caf::put(content, name, std::forward<T>(value));
    return *this;
  }

  /// The modules, in the order they were added.
  const std::vector<std::shared_ptr<node_module>>& modules() const noexcept {
    return modules_;
  }

  /// Declares options under `category` (e.g. "relay.cluster"), for modules
  /// and transports: `cfg.module_options("relay.x").add<bool>("flag", "...")`,
  /// read back with `caf::get_or(cfg, "relay.x.flag", false)`.
  caf::config_option_adder module_options(caf::string_view category);

  std::string node_name;
  size_t max_frame_size = frame_header::default_max_body;
  caf::timespan handshake_timeout = std::chrono::seconds{5};
  caf::timespan connect_timeout = std::chrono::seconds{5};
  caf::timespan lookup_timeout = std::chrono::seconds{10};
  /// Bound on the answer to node::spawn_on (after the connection exists).
  caf::timespan spawn_timeout = std::chrono::seconds{10};
  /// Whether peers may spawn, on this node, the actor types registered with
  /// CAF's add_actor_type (node::spawn_on). Only registered types can be
  /// spawned; peers are authenticated like any peer (same uid, or the
  /// shared secret).
  bool allow_remote_spawn = true;
  /// A connection on which nothing was sent for this long carries a
  /// heartbeat frame (one per interval while idle). Must be positive.
  caf::timespan heartbeat_interval = std::chrono::milliseconds{500};
  /// A connection on which nothing arrived for this long is closed with
  /// errc::heartbeat_timeout, and its node reported down. Counted in ticks
  /// of heartbeat_interval: detection takes ceil(timeout / interval) ticks,
  /// i.e. between that long and one interval more. At least twice
  /// heartbeat_interval (the node's constructor throws config_error
  /// otherwise).
  caf::timespan heartbeat_timeout = std::chrono::seconds{2};
  bool allow_other_uids = false;
  /// File holding the shared secret that authenticates peers on transports
  /// that authenticate. Must not be readable by group or others. Unset: the
  /// RELAY_COOKIE environment variable, if set, is the secret.
  std::string cookie_file;
  /// Run the receiving actor on the I/O thread that read its message, not
  /// on a scheduler worker: one thread wake-up less per message (see
  /// docs/benchmarks.md). Off by default: an actor that blocks then stalls
  /// every connection of the node.
  bool deliver_on_io_thread = false;
  /// Bound on the bytes waiting in one connection's outbound queue (frames
  /// accepted and not yet written to the transport). A message that would
  /// go past it is not queued: a request gets errc::overloaded as its
  /// response at once, an asynchronous message is a counted, logged drop
  /// (node_stats::overload_drops). Responses and system frames (down, link,
  /// heartbeat, ...) are never refused. The check and the enqueue are not
  /// one atomic step, so concurrent senders may pass it by one frame each.
  size_t max_queued_bytes = size_t{16} << 20;
  /// Bound on the wire bytes of messages from one peer that were delivered
  /// to local mailboxes and are not yet processed (or dropped) there. Past
  /// it the node stops reading that connection until half of it is left:
  /// back-pressure reaches the sender through the transport (its queue
  /// fills, then its max_queued_bytes applies). The heartbeat does not
  /// count a connection as silent while its reading is paused.
  size_t max_inbound_bytes = size_t{16} << 20;
  /// Resume the session of a broken connection (docs/reconnect.md): when a
  /// connection to a live node breaks (reset, cut, closed without a
  /// goodbye), the side that dialed it redials with back-off and both
  /// resend what the other had not dispatched; nothing is lost, duplicated
  /// or reordered, and no proxy reports DOWN. The node is lost only if no
  /// resume succeeds within heartbeat_timeout of the break, or the peer is
  /// a new incarnation, or (uds) its process is gone. Needs both sides to
  /// enable it and a transport that can redial (tcp, tls, uds). Off: every
  /// break loses the node at once, as a close does.
  bool resume = true;
  /// Bound on the bytes of sent, unacknowledged frames a session keeps for
  /// resending, per connection (allocated as used). Past it the oldest
  /// are evicted, and a break before the peer acknowledged them cannot be
  /// resumed (the node is lost, errc::session_lost). While the connection
  /// is broken it also bounds what senders may queue for the node: past
  /// it a message is refused with errc::overloaded. Should exceed
  /// max_queued_bytes plus what the transport holds in flight.
  size_t resume_buffer = size_t{32} << 20;
  /// Connect as a hidden node, as Erlang's hidden nodes (relayctl is one):
  /// a connection on which either side is hidden raises no node_up or
  /// node_down for monitor_nodes observers and listeners on either side,
  /// so cluster membership and supervisors that watch nodes never see it.
  /// Everything else works on it: lookups, messages, requests, monitors,
  /// monitor_node. Authentication and trust apply as to any peer.
  bool hidden = false;
  /// Where the node serves its metrics over HTTP, as "HOST:PORT" (e.g.
  /// "127.0.0.1:9464", "[::1]:9464"; port 0 picks a free one, see
  /// node::metrics_address): GET /metrics answers the Prometheus text
  /// format (docs/operations.md). Empty (the default): no endpoint. The
  /// endpoint authenticates nobody: keep it on loopback, or behind
  /// something that does; another host is logged as a warning.
  std::string metrics_listen;

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
  void add_module_impl(std::shared_ptr<node_module> module);

  message_registry messages_;
  std::vector<std::shared_ptr<node_module>> modules_;
};

} // namespace relay
