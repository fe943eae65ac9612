// The introspection service's own documents (introspection_documents.hpp).

#include "introspection_documents.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>

#include "node_impl.hpp"
#include "relay/detail/json_text.hpp"

namespace relay {

using json = nlohmann::json;

namespace {

/// ISO 8601 in UTC with milliseconds, e.g. 2026-12-01T11:38:17.123Z
/// (CAF 0.17's timestamp_to_string prints nanoseconds since the epoch).
std::string iso_time(caf::timestamp x) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              x.time_since_epoch())
              .count();
  auto secs = static_cast<time_t>(ms / 1000);
  tm parts{};
  gmtime_r(&secs, &parts);
  char buf[40];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &parts);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

/// A round-trip histogram as Prometheus counts it: cumulative buckets.
json rtt_document(const latency_histogram::snapshot& rtt) {
  auto buckets = json::array();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < rtt.buckets.size(); ++i) {
    cumulative += rtt.buckets[i];
    json le = i < latency_histogram::bounds.size()
                ? json(latency_histogram::bounds[i])
                : json("+Inf");
    buckets.push_back({{"le", std::move(le)}, {"count", cumulative}});
  }
  json doc{{"count", rtt.count},
           {"sum_seconds", static_cast<double>(rtt.sum_ns) / 1e9},
           {"buckets", std::move(buckets)}};
  if (rtt.count > 0)
    doc["last_ms"] = static_cast<double>(rtt.last.count()) / 1e6;
  return doc;
}

} // namespace

json node_document(node_impl& node) {
  json doc;
  doc["name"] = node.name();
  doc["id"] = caf::to_string(node.system().node());
  doc["pid"] = static_cast<int64_t>(::getpid());
  doc["listen"] = node.listening();
  if (auto address = node.metrics_address(); !address.empty())
    doc["metrics"] = address;
  // The node's monotonic clock: rates from two documents need no clock of
  // the reader's (the observer page's browser may run on virtual time).
  doc["clock_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
  auto peers = json::array();
  for (auto& p : node.peers()) {
    peers.push_back({
      {"name", p.name},
      {"id", caf::to_string(p.node)},
      {"uri", p.uri},
      {"transport", p.transport},
      {"since", iso_time(p.since)},
      {"frames_in", p.frames_in},
      {"frames_out", p.frames_out},
      {"bytes_in", p.bytes_in},
      {"bytes_out", p.bytes_out},
      {"messages_in", p.messages_in},
      {"messages_out", p.messages_out},
      {"queued_bytes", p.queued_bytes},
      {"inbound_bytes", p.inbound_bytes},
      {"inbound_paused", p.inbound_paused},
      {"hidden", p.hidden},
      {"rtt", rtt_document(p.rtt)},
    });
  }
  doc["peers"] = std::move(peers);
  return doc;
}

json stats_document(node_impl& node) {
  auto s = node.stats();
  return {
    {"dropped_messages", s.dropped_messages},
    {"overload_drops", s.overload_drops},
    {"overload_rejections", s.overload_rejections},
    {"untrusted_drops", s.untrusted_drops},
    {"inbound_pauses", s.inbound_pauses},
    {"unknown_type_ids", s.unknown_type_ids},
    {"protocol_errors", s.protocol_errors},
    {"rejected_peers", s.rejected_peers},
    {"connected_peers", s.connected_peers},
    {"resumed_sessions", s.resumed_sessions},
    {"lost_sessions", s.lost_sessions},
  };
}

json names_document(node_impl& node) {
  auto published = json::array();
  for (auto& [name, entry] : node.names().list()) {
    auto id = entry.handle ? entry.handle->id() : 0;
    json doc{{"name", name}, {"actor", id}, {"interface", entry.interface}};
    // From peers only: CAF 0.17 lets no one but the actor read its mailbox.
    if (auto traffic = node.traffic_of(id)) {
      doc["messages_in"] = traffic->messages_in.load();
      doc["mailbox_remote"] = std::max<int64_t>(traffic->queued.load(), 0);
    }
    published.push_back(std::move(doc));
  }
  return {{"published", std::move(published)}};
}

/// The reply of a call as JSON: one {type, value} per element; an element
/// whose type did not opt into JSON is given as text.
json reply_document(const message_registry& types, const caf::message& msg) {
  auto elements = json::array();
  for (size_t i = 0; i < msg.size(); ++i) {
    json element;
    auto info = types.find(msg.type(i));
    element["type"] = info != nullptr ? info->name : "<unregistered>";
    if (info != nullptr && info->json)
      element["value"] = detail::parse_json(info->json.to_json(msg.at(i)));
    else
      element["text"] = caf::to_string(msg.drop(i).take(1));
    elements.push_back(std::move(element));
  }
  return {{"reply", std::move(elements)}};
}

/// Records handed out per monitor poll.
constexpr size_t max_monitor_batch = 1000;

/// Topic "monitor": turns the node's trace on for its lease and answers the
/// records after args.since (none given: from now on), filtered by
/// args.name (a published actor, as sender or receiver) and args.type.
caf::result<std::string> poll_monitor(node_impl& node,
                                      const std::string& args_text) {
  json args = json::object();
  if (!args_text.empty()) {
    try {
      args = detail::parse_json(args_text);
    } catch (const std::exception& ex) {
      return make_error(errc::invalid_argument,
                        std::string{"monitor arguments are not JSON: "}
                          + ex.what());
    }
  }
  if (!args.is_object())
    return make_error(errc::invalid_argument,
                      "monitor takes {[\"since\": n][, \"name\": published "
                      "name][, \"type\": type name]}");
  std::optional<caf::actor_id> actor;
  if (auto name = args.value("name", std::string{}); !name.empty()) {
    auto entry = node.names().find(name);
    if (!entry)
      return make_error(errc::name_not_found,
                        "no actor is published as '" + name + "' on node '"
                          + node.name() + "'");
    actor = entry->handle->id();
  }
  auto type = args.value("type", std::string{});
  if (!type.empty() && node.messages().find_name(type) == nullptr)
    return make_error(errc::unregistered_type,
                      "no message type '" + type + "' is registered on node '"
                        + node.name() + "'");
  auto newest = node.trace().watch();
  if (!args.contains("since"))
    return detail::json_text(
      json{{"next", newest}, {"lost", 0}, {"messages", json::array()}});
  auto since = args.value("since", uint64_t{0});
  uint64_t lost = 0;
  auto records = node.trace().since(since, max_monitor_batch, lost);
  auto messages = json::array();
  auto service = node.introspector().id();
  for (auto& x : records) {
    // Not the watchers' own polls and answers.
    if ((x.inbound ? x.receiver : x.sender) == service)
      continue;
    // Actor ids are per node: the local side is the receiver of what comes
    // in and the sender of what goes out.
    if (actor && *actor != (x.inbound ? x.receiver : x.sender))
      continue;
    if (!type.empty() && x.type != type)
      continue;
    messages.push_back({{"seq", x.seq},
                        {"time", iso_time(x.time)},
                        {"direction", x.inbound ? "in" : "out"},
                        {"peer", x.peer},
                        {"sender", x.sender},
                        {"receiver", x.receiver},
                        {"type", x.type},
                        {"bytes", x.bytes}});
  }
  auto next = records.empty() ? since + lost : records.back().seq;
  return detail::json_text(
    json{{"next", next}, {"lost", lost}, {"messages", std::move(messages)}});
}

} // namespace relay
