#pragma once

// The introspection service's own documents (introspection_documents.cpp):
// what the topics node, stats, names and monitor answer, and the reply of
// a call, as JSON. The shapes are described in docs/operations.md. Thread
// rules: called on the service's thread (or a call actor's).

#include <string>

#include <nlohmann/json.hpp>

#include <caf/message.hpp>
#include <caf/response_promise.hpp>

namespace relay {

class message_registry;
class node_impl;

/// Topic "node": identity, listeners, the metrics address and each
/// connection with its traffic and round trips.
nlohmann::json node_document(node_impl& node);

/// Topic "stats": node_stats.
nlohmann::json stats_document(node_impl& node);

/// Topic "names": published names with their interfaces and, for actors
/// published with node::publish, what arrived from peers.
nlohmann::json names_document(node_impl& node);

/// The reply of a call: one {type, value} per element; an element whose
/// type did not opt into JSON is given as text.
nlohmann::json reply_document(const message_registry& types,
                              const caf::message& msg);

/// Topic "monitor": turns the node's trace on for its lease and answers the
/// records after args.since (none given: from now on), filtered by
/// args.name (a published actor, as sender or receiver) and args.type.
caf::result<std::string> poll_monitor(node_impl& node,
                                      const std::string& args_text);

} // namespace relay
