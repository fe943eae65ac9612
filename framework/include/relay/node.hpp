#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/expected.hpp>
#include <caf/make_message.hpp>
#include <caf/node_id.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "relay/error.hpp"
#include "relay/frame_handler.hpp"
#include "relay/node_config.hpp"
#include "relay/node_events.hpp"

namespace relay {

/// Message to a node's lookup actor: `(lookup_atom, uri, name)` answers
/// with a caf::actor; `(lookup_atom, uri, name, interface)` additionally
/// checks that the remote actor implements every signature in `interface`
/// (see node::interface_of).
using lookup_atom = caf::atom_constant<caf::atom("rlookup")>;

/// Message to a node's spawn service (node::spawn_actor):
/// `(spawn_atom, uri_or_node_id, type, interface, caf::message args)`
/// answers with the actor spawned on that node.
using spawn_atom = caf::atom_constant<caf::atom("rspawn")>;

/// Message to a node's introspection service (node::introspection_name)
/// and to introspection sources (node::add_introspection_source):
/// `(introspect_atom, std::string topic, std::string args)` answers with a
/// JSON document as std::string; `args` is JSON too ("" when a topic takes
/// none). See docs/operations.md for the topics and their documents.
using introspect_atom = caf::atom_constant<caf::atom("rinspect")>;

/// Counters of events a node handled without failing anyone.
struct node_stats {
  /// Messages that could not be delivered and had no sender to tell
  /// (asynchronous sends of unregistered types, to dead actors, ...).
  uint64_t dropped_messages = 0;
  /// Of dropped_messages: asynchronous messages refused because their
  /// connection's outbound queue was at relay.max-queued-bytes.
  uint64_t overload_drops = 0;
  /// Requests answered with errc::overloaded for the same reason.
  uint64_t overload_rejections = 0;
  /// Messages and frames refused from untrusted peers (trust_level).
  uint64_t untrusted_drops = 0;
  /// Times a connection's reading paused because its peer's delivered,
  /// unprocessed messages reached relay.max-inbound-bytes.
  uint64_t inbound_pauses = 0;
  /// Messages whose type id is not registered here.
  uint64_t unknown_type_ids = 0;
  /// Connections closed because the peer broke the protocol.
  uint64_t protocol_errors = 0;
  /// Connections refused before or during the handshake, by the node or by
  /// a transport (wrong uid, failed authentication).
  uint64_t rejected_peers = 0;
  /// Peers currently connected (handshake complete; a broken connection
  /// waiting to resume counts). Hidden peers (relayctl) count here, unlike
  /// in the relay_connected_peers metric, which leaves them out.
  uint64_t connected_peers = 0;
  /// Broken connections whose session resumed (relay.resume), on either
  /// side.
  uint64_t resumed_sessions = 0;
  /// Broken connections whose session was given up: no resume within
  /// relay.heartbeat-timeout, or the peer restarted or refused.
  uint64_t lost_sessions = 0;
};

class node_impl;


/// A Relay node, usually one per process (several in one process work, as
/// the tests show; each has its own actor system): owns the actor system, the node identity, the
/// transports, the connections to other nodes, the proxies and the names.
///
/// Thread rules: every member function is thread-safe. The node must
/// outlive every handle that refers to a remote actor through it; the
/// destructor stops the modules in reverse order, stops listening (removes
/// socket files), closes all connections after flushing what is queued on
/// them (bounded), so remote handles report their actors down with
/// exit_reason::remote_link_unreachable, and waits for the actor system
/// like ~caf::actor_system does.
class node {
public:
  /// Starts the actor system for `cfg`, which must outlive the node, then
  /// the modules of `cfg` in order. Throws config_error for an unusable
  /// configuration, and whatever a module's start throws.
  explicit node(node_config& cfg);

  ~node();

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// The actor system of this node.
  caf::actor_system& system() noexcept;

  /// This node's identity as CAF sees it (process id and a random
  /// 160-bit incarnation id).
  const caf::node_id& id() const noexcept;

  /// This node's name (relay.node-name, or "node-<pid>").
  const std::string& name() const noexcept;

  /// Accepts connections on `uri` (e.g. "uds:///run/app/a.sock",
  /// "uds:@name"). Returns the URI peers connect to, with anything chosen at
  /// listen time filled in. Peers that connect here get `trust` (see
  /// trust_level; connections this node dials are trusted). Errors:
  /// invalid_uri, unknown_scheme, listen_failed.
  caf::expected<std::string> listen(const std::string& uri,
                                    trust_level trust = trust_level::trusted);

  /// Makes `handle` reachable from other nodes as `name` (at most
  /// name_registry::max_name_size = 256 bytes). For typed handles, the
  /// interface is published too and checked by typed lookups. The name
  /// stops resolving when the actor terminates, as Erlang's registered
  /// names do. Errors: already_registered (name taken by a live actor),
  /// invalid_argument (null handle, an actor of another node, empty or
  /// over-long name, an actor that terminated).
  template <class Handle>
  caf::error publish(const Handle& handle, std::string name) {
    return publish_impl(caf::actor_cast<caf::strong_actor_ptr>(handle),
                        std::move(name), interface_of<Handle>());
  }

  /// Removes a published name. Returns whether it existed.
  bool unpublish(const std::string& name);

  /// Connects to the node at `uri` (or reuses the connection) and resolves
  /// `name` there, blocking the caller at most relay.lookup-timeout. For a
  /// typed `Handle`, fails with interface_mismatch unless the remote actor
  /// implements all of Handle's signatures. Use from main() or tests; from
  /// inside an actor, use lookup_actor() instead. Errors: invalid_uri,
  /// unknown_scheme, connect_failed, connect_timeout, handshake_failed,
  /// handshake_timeout, version_mismatch, name_not_found,
  /// interface_mismatch, lookup_timeout, connection_closed.
  template <class Handle = caf::actor>
  caf::expected<Handle> lookup(const std::string& uri,
                               const std::string& name) {
    auto ptr = lookup_impl(uri, name, interface_of<Handle>());
    if (!ptr)
      return std::move(ptr.error());
    return caf::actor_cast<Handle>(std::move(*ptr));
  }

  /// Resolves `name` among this node's own published actors (Erlang's
  /// whereis/1). Returns a null handle if nobody holds it.
  caf::actor whereis(const std::string& name) const;

  /// As lookup(uri, name), on node `id`, to which this node must be
  /// connected (in either direction). Errors: node_unreachable, then as
  /// for lookup.
  template <class Handle = caf::actor>
  caf::expected<Handle> lookup(const caf::node_id& id, const std::string& name) {
    auto ptr = lookup_impl(id, name, interface_of<Handle>());
    if (!ptr)
      return std::move(ptr.error());
    return caf::actor_cast<Handle>(std::move(*ptr));
  }

  /// The name under which every node publishes its spawner.
  static constexpr const char* remote_spawner_name = "relay.spawner";

  /// The name under which every node publishes its introspection service,
  /// which relayctl asks. It answers `(introspect_atom, topic, args)` with
  /// a JSON document: "node" (identity, listeners, connections and their
  /// traffic), "stats" (node_stats), "names" (published names and their
  /// interfaces), "tree" (supervision trees), "call" (args {"name", "type",
  /// "value"[, "timeout_ms"]}: a request built from JSON to a published
  /// actor, answered as {"reply": [{"type", "value"}, ...]}; the types must
  /// opt into JSON, see relay/json_codec.hpp), "monitor" (args {["since":
  /// n][, "name"][, "type"]}: the messages entering and leaving the node
  /// since n, recorded only while polled), and any topic a module adds
  /// sources to. Every topic's document lists what its sources answered
  /// under "sources". Untrusted peers are refused (errc::forbidden).
  static constexpr const char* introspection_name = "relay.introspect";

  /// Adds `source` to introspection topic `topic` (e.g. "tree"): the
  /// service asks it `(introspect_atom, topic, args)` whenever the topic is
  /// asked for and lists its answer (a JSON document as std::string) under
  /// the topic's "sources"; one that fails or does not answer within 2 s is
  /// listed as {"actor": id, "error": why}. Kept until `source` terminates;
  /// adding it twice has no effect. Thread-safe.
  void add_introspection_source(std::string topic, const caf::actor& source);

  /// Spawns an actor of `type` on the node at `uri_or_node` (a URI, or the
  /// caf::node_id of a connected node) from `args`, as CAF's
  /// `system().spawn<Handle>(type, args)` does there: `type` must be
  /// registered with `cfg.add_actor_type` on that node, and `args` must be
  /// registered message types. Blocks the caller up to
  /// relay.lookup-timeout plus relay.spawn-timeout; from inside an actor,
  /// use spawn_actor() instead. For a typed `Handle`, the remote factory's
  /// interface must match (CAF's check). The actor is stopped with
  /// exit_reason::remote_link_unreachable if this node goes down. Errors:
  /// as for lookup, and unknown_actor_type, invalid_spawn_arguments,
  /// interface_mismatch, spawn_timeout, peer_rejected (spawning disabled
  /// there), unregistered_type (an argument).
  template <class Handle = caf::actor, class Target, class... Ts>
  caf::expected<Handle> spawn_on(const Target& uri_or_node,
                                 const std::string& type, Ts&&... args) {
    auto ptr = spawn_on_impl(to_target(uri_or_node), type,
                             system().message_types<Handle>(),
                             caf::make_message(std::forward<Ts>(args)...));
    if (!ptr)
      return std::move(ptr.error());
    return caf::actor_cast<Handle>(std::move(*ptr));
  }

  /// An actor that spawns on other nodes without blocking its caller:
  /// `self->request(node.spawn_actor(), timeout, spawn_atom::value, uri,
  /// type, std::vector<std::string>{}, caf::make_message(args...))`, with a
  /// node id in place of the URI for a connected node; the vector is the
  /// expected interface (system().message_types<Handle>(), empty for
  /// caf::actor). Errors: as for spawn_on.
  caf::actor spawn_actor() const;

  /// An actor that performs lookups without blocking its caller:
  /// `self->request(node.lookup_actor(), timeout, lookup_atom::value, uri,
  /// name).then([](caf::actor remote) {...}, [](caf::error& err) {...})`.
  caf::actor lookup_actor() const;

  /// Connects to `uri` without resolving a name; returns the peer's node
  /// id. Useful to fail fast. Errors: as for lookup.
  caf::expected<caf::node_id> connect(const std::string& uri);

  /// Closes the connection to node `peer_id` (like Erlang's
  /// disconnect_node). What local actors sent to it before goes out first
  /// (bounded by the transport's flush timeout; what is left is counted in
  /// node_stats::dropped_messages and logged once). Then proxies of its
  /// actors report DOWN/EXIT with exit_reason::remote_link_unreachable and
  /// pending requests to it fail. Returns whether a connection existed.
  bool disconnect(const caf::node_id& peer_id);

  /// As disconnect(peer_id), with `reason` in the log line, the proxies'
  /// DOWN/EXIT messages (still exit_reason::remote_link_unreachable for
  /// actors) and the node_down event; e.g. a failure detector's verdict
  /// (errc::heartbeat_timeout).
  bool disconnect(const caf::node_id& peer_id, caf::error reason);

  /// Snapshot of this node's counters.
  node_stats stats() const;

  // -- node events ---------------------------------------------------------------

  /// `observer` receives a node_up_msg when a node connects (its first
  /// connection completes the handshake) and a node_down_msg when its last
  /// connection ends, for every node, until demonitor_nodes. Per node: up
  /// before down, one down per up. Registering twice has no extra effect.
  void monitor_nodes(const caf::actor& observer);

  /// Undoes monitor_nodes. Returns whether `observer` was registered.
  bool demonitor_nodes(const caf::actor& observer);

  /// `observer` receives one node_down_msg when node `id` goes down, at once
  /// (reason node_unreachable) if it is not connected now. As Erlang's
  /// monitor_node/2.
  void monitor_node(const caf::actor& observer, const caf::node_id& id);

  /// The nodes connected now, with traffic counters (see peer_info).
  std::vector<peer_info> peers() const;

  /// "HOST:PORT" where this node serves GET /metrics (relay.metrics.listen,
  /// with the port it bound when that asked for port 0), or "" without an
  /// endpoint. Thread-safe.
  std::string metrics_address() const;

  /// Calls `listener` on node events (see node_listener for the thread
  /// rules), until remove_listener.
  void add_listener(std::shared_ptr<node_listener> listener);

  /// Undoes add_listener. Returns whether `listener` was registered.
  bool remove_listener(const std::shared_ptr<node_listener>& listener);

  // -- extending the protocol ------------------------------------------------------

  /// Handles frames of `kind` (first_module_frame_kind to 255) with
  /// `handler`, named `name` in logs. Only while the node starts, i.e. from
  /// node_module::start, before any connection. Errors: invalid_argument (a
  /// reserved kind, or called after start or after a connection opened),
  /// already_registered (the kind is taken).
  caf::error add_frame_handler(uint8_t kind, std::string name,
                               frame_handler handler);

  /// Sends `frame` (built with begin_frame/finish_frame) to connected node
  /// `id`, for modules speaking their own frame kinds. Thread-safe; frames
  /// passed by one thread leave in call order. Errors: invalid_argument (a
  /// kind below first_module_frame_kind: the framework's own kinds are not
  /// for modules to send), node_unreachable (not connected),
  /// frame_too_large, connection_closed.
  caf::error send_frame(const caf::node_id& id, frame_buffer frame);

  /// The interface of `Handle` as published and checked on lookup: one
  /// string per signature, e.g. "(my.ping) -> (my.pong)"; empty for
  /// dynamically typed handles.
  template <class Handle>
  std::vector<std::string> interface_of() const {
    return interface_helper<Handle>::make(messages());
  }

  /// The message types of this node.
  const message_registry& messages() const noexcept;

  /// The implementation; for Relay's own tests and tools.
  node_impl& impl() noexcept {
    return *impl_;
  }

private:
  template <class T>
  struct type_label {
    static std::string make(const message_registry& reg) {
      return reg.name_of<T>();
    }
  };

  template <caf::atom_value V>
  struct type_label<caf::atom_constant<V>> {
    static std::string make(const message_registry&) {
      return "'" + caf::to_string(V) + "'";
    }
  };

  template <class... Ts>
  static std::string join(const message_registry& reg) {
    std::string result;
    ((result += (result.empty() ? "" : ", ") + type_label<Ts>::make(reg)),
     ...);
    return result;
  }

  template <class Sig>
  struct signature_label;

  template <class... Is, class... Os>
  struct signature_label<
    caf::typed_mpi<caf::detail::type_list<Is...>, caf::output_tuple<Os...>>> {
    static std::string make(const message_registry& reg) {
      return "(" + join<Is...>(reg) + ") -> (" + join<Os...>(reg) + ")";
    }
  };

  template <class Handle>
  struct interface_helper {
    static std::vector<std::string> make(const message_registry&) {
      return {};
    }
  };

  template <class... Sigs>
  struct interface_helper<caf::typed_actor<Sigs...>> {
    static std::vector<std::string> make(const message_registry& reg) {
      return {signature_label<Sigs>::make(reg)...};
    }
  };

  caf::error publish_impl(caf::strong_actor_ptr handle, std::string name,
                          std::vector<std::string> interface);

  caf::expected<caf::strong_actor_ptr>
  lookup_impl(const caf::node_id& id, const std::string& name,
              std::vector<std::string> interface);

  static caf::message to_target(const std::string& uri) {
    return caf::make_message(uri);
  }
  static caf::message to_target(const char* uri) {
    return caf::make_message(std::string{uri});
  }
  static caf::message to_target(const caf::node_id& id) {
    return caf::make_message(id);
  }

  caf::expected<caf::strong_actor_ptr>
  spawn_on_impl(caf::message target, const std::string& type,
                const std::set<std::string>& interface, caf::message args);

  caf::expected<caf::strong_actor_ptr>
  lookup_impl(const std::string& uri, const std::string& name,
              std::vector<std::string> interface);

  std::unique_ptr<node_impl> impl_;
};

} // namespace relay
