#pragma once

// The node's metrics: its introspection documents written in the
// Prometheus text format (version 0.0.4, https://prometheus.io/docs/
// instrumenting/exposition_formats/), served on an optional HTTP endpoint
// (relay.metrics.listen) and through relayctl metrics. The metric names
// and what each counts are listed in docs/operations.md.

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

namespace httplib {
class Server;
} // namespace httplib

namespace relay {

/// Writes `doc` in the Prometheus text format. `doc` holds the
/// introspection documents {"node": ..., "stats": ..., "names": ...} and,
/// under "sources", the answers of the "tree" sources (supervisors). Parts
/// missing or of the wrong shape are left out; label values are escaped
/// and made valid UTF-8, so peers' names cannot break the format.
std::string prometheus_text(const nlohmann::json& doc);

/// The observer page (observer_page.cpp): HTML with its style and script
/// inline.
const char* observer_page();

/// An HTTP server on its own thread (cpp-httplib, one worker) for the
/// node's metrics and observer page:
/// - GET /metrics: the Prometheus text (topic "metrics");
/// - GET /api/node, /api/tree, /api/names, /api/stats: the introspection
///   documents as JSON, for the page;
/// - GET /: the observer page;
/// anything else 404. The documents come from `ask(topic)`, which answers
/// an HTTP status and the topic's JSON document (or why not, for a status
/// other than 200).
///
/// When bound to loopback it answers only requests whose Host header names
/// loopback (localhost, 127.0.0.1, [::1]), so a web page elsewhere cannot
/// read it through DNS rebinding; the others get 403.
///
/// Thread rules: `ask` runs on the server's worker thread and may block
/// (bounded by its own timeout). The destructor stops the server and joins
/// its threads; a request in progress finishes first.
class metrics_endpoint {
public:
  using ask_function
    = std::function<std::pair<int, std::string>(const std::string& topic)>;

  /// Binds `listen` ("HOST:PORT", "[V6]:PORT"; port 0 picks one) and starts
  /// serving. Throws config_error for a malformed address or one that
  /// cannot be bound (naming it and why).
  metrics_endpoint(const std::string& listen, ask_function ask);

  ~metrics_endpoint();

  metrics_endpoint(const metrics_endpoint&) = delete;
  metrics_endpoint& operator=(const metrics_endpoint&) = delete;

  /// The bound address as "HOST:PORT" ("[V6]:PORT"), with the real port.
  const std::string& address() const noexcept {
    return address_;
  }

  /// Whether `host` is a loopback address or "localhost".
  static bool loopback(const std::string& host);

private:
  std::unique_ptr<httplib::Server> server_;
  std::string address_;
  std::thread thread_;
};

} // namespace relay
