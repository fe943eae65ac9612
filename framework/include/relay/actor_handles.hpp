#pragma once

// Actor handles inside messages: they cross the wire as references (node id
// and actor id) and arrive as working proxies. The conversion needs the
// connection a message travels on, which the framework passes to the
// archives as a codec_context.

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/fwd.hpp>
#include <caf/typed_actor.hpp>

#include "relay/wire_archive.hpp"

namespace relay {

/// Resolves actor handles while a message is written for, or read from, one
/// peer. Implemented by the framework; thread rules are those of the
/// surrounding encode/decode call.
class codec_context {
public:
  virtual ~codec_context();

  /// Writes a reference to `x` (may be null).
  virtual void write_actor(wire_writer& ar, const caf::actor_control_block* x) = 0;

  /// Reads a reference and returns a local actor or a proxy, or null if the
  /// reference was null or names a local actor that no longer exists.
  /// Throws wire_error on malformed input.
  virtual caf::strong_actor_ptr read_actor(wire_reader& ar) = 0;
};

namespace detail {

template <class Archive>
codec_context& require_context(Archive& ar) {
  if (auto ctx = ar.context())
    return *ctx;
  throw wire_error("actor handles can only cross the wire inside messages");
}

} // namespace detail

inline void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar,
                                      const caf::strong_actor_ptr& x) {
  detail::require_context(ar).write_actor(ar, x.get());
}

inline void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar,
                                      caf::strong_actor_ptr& x) {
  x = detail::require_context(ar).read_actor(ar);
}

inline void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const caf::actor& x) {
  detail::require_context(ar).write_actor(
    ar, caf::actor_cast<caf::actor_control_block*>(x));
}

inline void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::actor& x) {
  x = caf::actor_cast<caf::actor>(detail::require_context(ar).read_actor(ar));
}

/// An address refers to the actor without keeping it alive; it is written
/// even when the actor has already terminated.
inline void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar,
                                      const caf::actor_addr& x) {
  detail::require_context(ar).write_actor(
    ar, caf::actor_cast<caf::actor_control_block*>(x));
}

inline void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::actor_addr& x) {
  x = caf::actor_cast<caf::actor_addr>(
    detail::require_context(ar).read_actor(ar));
}

template <class... Sigs>
void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar,
                               const caf::typed_actor<Sigs...>& x) {
  detail::require_context(ar).write_actor(
    ar, caf::actor_cast<caf::actor_control_block*>(x));
}

template <class... Sigs>
void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::typed_actor<Sigs...>& x) {
  x = caf::actor_cast<caf::typed_actor<Sigs...>>(
    detail::require_context(ar).read_actor(ar));
}

} // namespace relay
