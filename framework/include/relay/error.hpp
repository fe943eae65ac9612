#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace relay {

/// Error codes of Relay, in the error category "relay". Every error Relay
/// returns carries a context string that names the endpoint, peer, type or
/// limit involved; render it with relay::describe(const caf::error&).
enum class errc : uint8_t {
  invalid_uri = 1,        ///< malformed endpoint URI
  unknown_scheme,         ///< no transport for the URI's scheme
  listen_failed,          ///< cannot listen (in use, permissions, ...)
  connect_failed,         ///< nobody listening, refused, unreachable
  connect_timeout,        ///< the transport's connect bound elapsed
  connection_closed,      ///< the connection is closed or closing
  peer_rejected,          ///< peer is not allowed (uid, authentication)
  handshake_failed,       ///< malformed or unexpected handshake
  handshake_timeout,      ///< peer did not complete the handshake in time
  version_mismatch,       ///< peer speaks another protocol version
  frame_too_large,        ///< frame exceeds the configured bound
  protocol_error,         ///< bad magic, unknown kind, malformed body
  unregistered_type,      ///< message type has no registered name
  unknown_type_id,        ///< peer sent a type id not registered here
  no_such_actor,          ///< message to an actor that does not exist
  name_not_found,         ///< lookup of a name nobody published
  interface_mismatch,     ///< typed lookup: remote actor lacks signatures
  node_unreachable,       ///< connection to the actor's node was lost
  already_registered,     ///< message type name or id clash
  lookup_timeout,         ///< lookup reply did not arrive in time
  invalid_argument,       ///< a caller passed something unusable
  authentication_failed,  ///< peer failed the shared-secret check, or we did
  insecure_configuration, ///< a setting would weaken security (see message)
  heartbeat_timeout,      ///< nothing arrived from a peer for too long
  unknown_actor_type,     ///< remote spawn: no such type registered there
  invalid_spawn_arguments,///< remote spawn: the type's factory refused them
  spawn_timeout,          ///< remote spawn: no answer in time
  overloaded,             ///< a connection's outbound queue is at its bound
  forbidden,              ///< an untrusted peer asked for what it may not do
  session_lost,           ///< a broken connection's session cannot resume
  resume_pending,         ///< resume refused for now: the peer still closes
                          ///< the broken connection; try again
};

/// The highest code of relay::errc (codes are 1 to errc_last, without gaps).
constexpr errc errc_last = errc::resume_pending;

/// Name of the category for relay::errc in caf::error.
constexpr caf::atom_value error_category_atom = caf::atom("relay");

/// Returns the name of `x`, e.g. "connect_failed".
const char* to_string(errc x);

/// Makes an error with code `x` and no context.
caf::error make_error(errc x);

/// Makes an error with code `x` and a context string saying what happened.
caf::error make_error(errc x, std::string what);

/// Renders any caf::error readably: "relay.connect_failed: uds:///a: No such
/// file or directory" for Relay's errors, CAF's rendering otherwise.
std::string describe(const caf::error& x);

/// Lets describe() render errors of another library's category the same
/// way: "<prefix>.<name(code)>: <context>". Libraries above the framework
/// (supervisors, ...) call it once, e.g. from a static initializer.
/// Thread-safe; a second call for `category` replaces the first.
void register_error_category(caf::atom_value category, std::string prefix,
                             const char* (*name)(uint8_t code));

/// True if `x` is a Relay error with code `code`.
bool is(const caf::error& x, errc code);

} // namespace relay
