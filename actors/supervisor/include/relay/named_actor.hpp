#pragma once

#include <string>

#include <caf/actor.hpp>

namespace relay {

class node;

/// A handle that stands for whatever actor currently holds `name`, like a
/// send to a registered name in Erlang: each message goes to the current
/// holder, resolved on first use and again after the holder terminates, so
/// callers need not care about a supervised child's incarnations. The name
/// is resolved on `n` itself (node::whereis) if `uri` is empty, else on the
/// node at `uri` (node::lookup; the actor is then detached, as lookups
/// block). Sender and request id are kept (CAF's delegate), so requests are
/// answered by the holder. A message while nobody holds the name fails a
/// request with errc::name_not_found; an asynchronous one is logged as
/// dropped (a warning per message). `n` must outlive the returned actor; stop it with an exit
/// message when done.
caf::actor named_actor(node& n, std::string name, std::string uri = {});

} // namespace relay
