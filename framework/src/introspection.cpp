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

#include "introspection_documents.hpp"
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
