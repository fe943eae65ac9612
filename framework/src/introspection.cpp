// The introspection service. Every node publishes it as
// node::introspection_name; relayctl (and any trusted peer) asks it
// `(introspect_atom, topic, args)` and gets a JSON document back, so a
// tool needs none of the node's C++ types. The node answers its own topics
// (node, stats, names, call) and adds what the sources registered for the
// topic answer (supervisors for "tree", the cluster for "names", ...).
// Untrusted peers are refused (message_protocol.cpp), as for remote spawn.
// The documents are described in docs/operations.md.

#include "introspection.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/others.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "metrics.hpp"
#include "node_impl.hpp"
#include "relay/detail/json_text.hpp"
#include "relay/log.hpp"

namespace relay {

using json = nlohmann::json;

namespace {

/// How long the service waits for a source's answer.
constexpr auto source_timeout = std::chrono::seconds{2};

/// Calls (topic "call") running at once; more are refused as overloaded.
constexpr int max_concurrent_calls = 16;

/// Default and upper bound of a call's timeout.
constexpr int64_t default_call_timeout_ms = 5000;
constexpr int64_t max_call_timeout_ms = 60000;

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

struct introspection_state {
  static inline const char* name = "relay.introspect";
  /// Calls in flight (each runs on a detached actor of its own).
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
};

using self_ptr = caf::stateful_actor<introspection_state>*;

using call_atom = caf::atom_constant<caf::atom("rcall")>;

/// Runs one call (topic "call"): answers `(call_atom)`, delegated to it by
/// the service, with the reply of `dest` to `request` as a JSON document.
/// A detached actor that blocks on the answer, because a call's answer can
/// be of any type, which only a blocking receive with a catch-all takes in
/// CAF 0.17. Node shutdown waits for calls in flight (at most their
/// timeout). `types` belongs to the configuration, which outlives the node.
void call_actor(caf::blocking_actor* self, caf::actor dest, caf::message request,
                std::chrono::milliseconds timeout, std::string name,
                const message_registry* types,
                std::shared_ptr<std::atomic<int>> calls) {
  // Frees the call's slot once, at the latest when the actor ends.
  struct slot {
    std::atomic<int>* n;
    void release() {
      if (n != nullptr)
        --*n;
      n = nullptr;
    }
    ~slot() {
      release();
    }
  } guard{calls.get()};
  self->receive(
    [&](call_atom) -> caf::result<std::string> {
      caf::result<std::string> answer{caf::error{}};
      self->request(dest, timeout, request)
        .receive(
          [&](caf::error& err) {
            if (err == caf::sec::request_timeout)
              err = caf::make_error(caf::sec::request_timeout,
                                    "'" + name + "' did not answer within "
                                      + std::to_string(timeout.count())
                                      + " ms");
            answer = std::move(err);
          },
          caf::others >> [&](caf::message_view& xs) -> caf::result<caf::message> {
            try {
              answer = detail::json_text(
                reply_document(*types, xs.copy_content_to_message()));
            } catch (const std::exception& ex) {
              answer = make_error(errc::invalid_argument,
                                  "cannot write the reply of '" + name
                                    + "' as JSON: " + ex.what());
            }
            return caf::message{};
          });
      // Before answering: whoever hears the answer may call again.
      guard.release();
      return answer;
    },
    caf::after(std::chrono::seconds{10}) >> [] {
      // The service delegates at once; nothing came: nothing to answer.
    });
}

/// Checks a call and hands it to a call_actor of its own.
caf::result<std::string> start_call(self_ptr self, node_impl& node,
                                    const std::string& args_text) {
  json args;
  try {
    args = detail::parse_json(args_text);
  } catch (const std::exception& ex) {
    return make_error(errc::invalid_argument,
                      std::string{"call arguments are not JSON: "} + ex.what());
  }
  if (!args.is_object() || !args.contains("name") || !args["name"].is_string()
      || !args.contains("type") || !args["type"].is_string()
      || !args.contains("value"))
    return make_error(errc::invalid_argument,
                      "call takes {\"name\": published name, \"type\": "
                      "registered type name, \"value\": JSON[, "
                      "\"timeout_ms\": n]}");
  auto name = args["name"].get<std::string>();
  auto type = args["type"].get<std::string>();
  auto target = node.names().find(name);
  if (!target)
    return make_error(errc::name_not_found, "no actor is published as '" + name
                                              + "' on node '" + node.name()
                                              + "'");
  auto info = node.messages().find_name(type);
  if (info == nullptr)
    return make_error(errc::unregistered_type,
                      "no message type '" + type + "' is registered on node '"
                        + node.name() + "'");
  if (!info->json)
    return make_error(errc::invalid_argument,
                      "message type '" + type
                        + "' did not opt into JSON at registration "
                          "(relay::json_codec_for, relay/json_codec.hpp)");
  caf::message request;
  try {
    request = info->json.from_json(detail::json_text(args["value"]));
  } catch (const std::exception& ex) {
    return make_error(errc::invalid_argument, "cannot read the value as '"
                                                + type + "': " + ex.what());
  }
  auto timeout_ms = args.value("timeout_ms", default_call_timeout_ms);
  timeout_ms = std::clamp<int64_t>(timeout_ms, 1, max_call_timeout_ms);
  auto calls = self->state.calls;
  if (calls->fetch_add(1) >= max_concurrent_calls) {
    calls->fetch_sub(1);
    return make_error(errc::overloaded,
                      "node '" + node.name() + "' runs "
                        + std::to_string(max_concurrent_calls)
                        + " calls already");
  }
  auto caller = self->spawn<caf::detached + caf::hidden>(
    call_actor, caf::actor_cast<caf::actor>(target->handle), std::move(request),
    std::chrono::milliseconds{timeout_ms}, std::move(name), &node.messages(),
    std::move(calls));
  // The caller answers the request itself (a promise must be delivered by
  // its own actor's thread).
  self->delegate(caller, call_atom::value);
  return caf::delegated<std::string>{};
}

/// Writes a gathered document as the answer.
using finisher = std::function<std::string(const json&)>;

/// Answers `finish(base)`, where base gets, under "sources", what every
/// source of `topic` answers (an error object for one that fails or stays
/// silent).
caf::result<std::string>
gather(self_ptr self, std::vector<caf::actor> sources, const std::string& topic,
       const std::string& args, json base,
       finisher finish = [](const json& doc) { return detail::json_text(doc); }) {
  if (sources.empty()) {
    base["sources"] = json::array();
    return finish(base);
  }
  struct pending {
    json doc;
    size_t missing;
    caf::response_promise rp;
    finisher finish;
  };
  auto state = std::make_shared<pending>();
  state->doc = std::move(base);
  state->doc["sources"] = json::array();
  state->missing = sources.size();
  state->rp = self->make_response_promise();
  state->finish = std::move(finish);
  auto done = [state] {
    if (--state->missing == 0)
      state->rp.deliver(state->finish(state->doc));
  };
  for (auto& src : sources) {
    auto id = src.id();
    self->request(src, source_timeout, introspect_atom::value, topic, args)
      .then(
        [state, done, id](std::string& text) {
          try {
            state->doc["sources"].push_back(detail::parse_json(text));
          } catch (const std::exception& ex) {
            state->doc["sources"].push_back(
              {{"actor", id},
               {"error", std::string{"not JSON: "} + ex.what()}});
          }
          done();
        },
        [state, done, id](caf::error& err) {
          state->doc["sources"].push_back(
            {{"actor", id}, {"error", describe(err)}});
          done();
        });
  }
  return state->rp;
}

/// Answers `topic` (see node::introspection_name).
caf::result<std::string> answer(self_ptr self, node_impl* node,
                                const std::string& topic,
                                const std::string& args) {
  json base = json::object();
  if (topic == "call")
    return start_call(self, *node, args);
  if (topic == "monitor")
    return poll_monitor(*node, args);
  if (topic == "metrics") {
    // Built from the other topics' documents, supervisors' trees included.
    json docs{{"node", node_document(*node)},
              {"stats", stats_document(*node)},
              {"names", names_document(*node)}};
    return gather(self, node->introspection().of("tree"), "tree", args,
                  std::move(docs), [](const json& doc) {
                    return detail::json_text({{"text", prometheus_text(doc)}});
                  });
  }
  if (topic == "node")
    base = node_document(*node);
  else if (topic == "stats")
    base = stats_document(*node);
  else if (topic == "names")
    base = names_document(*node);
  auto sources = node->introspection().of(topic);
  if (base.empty() && sources.empty() && topic != "tree")
    return make_error(errc::invalid_argument,
                      "no introspection topic '" + topic
                        + "' on node '" + node->name()
                        + "' (node, stats, names, tree, metrics, call, "
                          "monitor, or a module's)");
  return gather(self, std::move(sources), topic, args, std::move(base));
}

caf::behavior introspection_actor(self_ptr self, node_impl* node) {
  return {
    [self, node](introspect_atom, const std::string& topic,
                 const std::string& args) -> caf::result<std::string> {
      // Arguments come from a peer: a value of the wrong JSON type (a
      // string for "since") is its error, not the service's end.
      try {
        return answer(self, node, topic, args);
      } catch (const std::exception& ex) {
        return make_error(errc::invalid_argument,
                          "bad arguments for introspection topic '" + topic
                            + "': " + ex.what());
      }
    },
  };
}

} // namespace

void node_impl::start_introspection() {
  introspector_ = system_.spawn<caf::hidden>(introspection_actor, this);
  if (auto err = names_->publish(
        caf::actor_cast<caf::strong_actor_ptr>(introspector_),
        node::introspection_name, {}))
    throw config_error("cannot publish the introspection service: "
                       + describe(err));
}

void node_impl::stop_introspection() {
  introspection_.clear();
  caf::scoped_actor self{system_};
  self->send_exit(introspector_, caf::exit_reason::user_shutdown);
  self->wait_for(introspector_);
}

void node_impl::start_metrics() {
  if (cfg_.metrics_listen.empty())
    return;
  metrics_ = std::make_unique<metrics_endpoint>(
    cfg_.metrics_listen,
    [this](const std::string& topic) -> std::pair<int, std::string> {
      caf::scoped_actor self{system_};
      std::pair<int, std::string> result{503, "no answer\n"};
      self
        ->request(introspector_, std::chrono::seconds{5},
                  introspect_atom::value, topic, std::string{})
        .receive(
          [&](std::string& doc) { result = {200, std::move(doc)}; },
          [&](const caf::error& err) {
            result = {503, "node '" + name() + "' did not answer: "
                             + describe(err) + "\n"};
          });
      return result;
    });
  {
    std::lock_guard<std::mutex> guard{metrics_mtx_};
    metrics_address_ = metrics_->address();
  }
  log(log_level::info, "node '" + name() + "' serves metrics on http://"
                         + metrics_->address() + "/metrics");
}

void node_impl::stop_metrics() {
  {
    std::lock_guard<std::mutex> guard{metrics_mtx_};
    metrics_address_.clear();
  }
  metrics_.reset();
}

std::string node_impl::metrics_address() const {
  std::lock_guard<std::mutex> guard{metrics_mtx_};
  return metrics_address_;
}

std::vector<std::string> node_impl::listening() const {
  std::vector<std::string> result;
  std::lock_guard<std::mutex> guard{acceptors_mtx_};
  for (auto& acc : acceptors_)
    result.push_back(acc->uri());
  return result;
}

} // namespace relay
