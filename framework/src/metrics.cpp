// prometheus_text(): the introspection documents in the Prometheus text
// format (metrics.hpp). The HTTP side is metrics_endpoint.cpp.

#include "metrics.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

namespace relay {

namespace {

using json = nlohmann::json;

/// A label value as the text format wants it: valid UTF-8 (bad bytes
/// become U+FFFD, as in every JSON document of the node), with backslash,
/// double quote and line feed escaped.
std::string label_value(const std::string& raw) {
  auto valid = json::parse(
                 json(raw).dump(-1, ' ', false, json::error_handler_t::replace))
                 .get<std::string>();
  std::string out;
  out.reserve(valid.size());
  for (char c : valid) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

using labels = std::vector<std::pair<std::string, std::string>>;

std::string render(const labels& xs) {
  if (xs.empty())
    return {};
  std::string out = "{";
  for (auto& [k, v] : xs) {
    if (out.size() > 1)
      out += ',';
    out += k + "=\"" + label_value(v) + '"';
  }
  return out + '}';
}

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", x);
  return buf;
}

std::string number(uint64_t x) {
  return std::to_string(x);
}

/// Collects samples by family, so that each family's HELP and TYPE lines
/// come once, before all of its samples, as the format requires.
class exposition {
public:
  void add(const std::string& family, const char* type, const char* help,
           const std::string& sample_name, const labels& ls,
           const std::string& value) {
    auto [i, added] = families_.emplace(family, entry{});
    if (added) {
      order_.push_back(family);
      i->second.head = "# HELP " + family + ' ' + help + "\n# TYPE " + family
                       + ' ' + type + '\n';
    }
    i->second.samples += sample_name + render(ls) + ' ' + value + '\n';
  }

  void counter(const std::string& name, const char* help, const labels& ls,
               uint64_t value) {
    add(name, "counter", help, name, ls, number(value));
  }

  void gauge(const std::string& name, const char* help, const labels& ls,
             double value) {
    add(name, "gauge", help, name, ls, number(value));
  }

  std::string text() const {
    std::string out;
    for (auto& name : order_) {
      auto& f = families_.at(name);
      out += f.head + f.samples;
    }
    return out;
  }

private:
  struct entry {
    std::string head;
    std::string samples;
  };
  std::map<std::string, entry> families_;
  std::vector<std::string> order_;
};

uint64_t u64(const json& obj, const char* key) {
  if (!obj.is_object())
    return 0;
  auto i = obj.find(key);
  if (i == obj.end() || !i->is_number())
    return 0;
  return i->is_number_unsigned() ? i->get<uint64_t>()
         : i->get<double>() < 0  ? 0
                                 : static_cast<uint64_t>(i->get<double>());
}

std::string str(const json& obj, const char* key) {
  if (!obj.is_object())
    return {};
  auto i = obj.find(key);
  if (i == obj.end())
    return {};
  return i->is_string() ? i->get<std::string>() : i->dump();
}

void node_metrics(exposition& out, const json& node) {
  out.gauge("relay_node_info", "The node: its name, id and process id.",
            {{"name", str(node, "name")},
             {"id", str(node, "id")},
             {"pid", str(node, "pid")}},
            1);
  auto peers = node.value("peers", json::array());
  if (!peers.is_array())
    return;
  for (auto& p : peers) {
    // Tools (relayctl, hidden nodes) come and go with a new id each time:
    // series for them would only pile up in the time-series database.
    if (p.value("hidden", false))
      continue;
    labels ls{{"peer", str(p, "name")},
              {"peer_id", str(p, "id")},
              {"transport", str(p, "transport")}};
    out.counter("relay_messages_sent_total",
                "Actor messages sent to the peer (requests and responses "
                "included).",
                ls, u64(p, "messages_out"));
    out.counter("relay_messages_received_total",
                "Actor messages from the peer handed to local actors.", ls,
                u64(p, "messages_in"));
    out.counter("relay_frames_sent_total",
                "Frames written to the connection, every kind.", ls,
                u64(p, "frames_out"));
    out.counter("relay_frames_received_total",
                "Frames read from the connection, every kind.", ls,
                u64(p, "frames_in"));
    out.counter("relay_sent_bytes_total",
                "Bytes of frames written to the connection.", ls,
                u64(p, "bytes_out"));
    out.counter("relay_received_bytes_total",
                "Bytes of frames read from the connection.", ls,
                u64(p, "bytes_in"));
    out.gauge("relay_queued_bytes",
              "Bytes waiting in the connection's outbound queue "
              "(bound: relay.max-queued-bytes).",
              ls, static_cast<double>(u64(p, "queued_bytes")));
    out.gauge("relay_inbound_unprocessed_bytes",
              "Wire bytes of the peer's messages delivered to local "
              "mailboxes and not yet processed (bound: "
              "relay.max-inbound-bytes).",
              ls, static_cast<double>(u64(p, "inbound_bytes")));
    out.gauge("relay_inbound_paused",
              "1 while reading from the peer is paused by back-pressure.", ls,
              p.value("inbound_paused", false) ? 1 : 0);
    auto rtt = p.value("rtt", json::object());
    auto buckets = rtt.value("buckets", json::array());
    if (!buckets.is_array())
      continue;
    const char* help = "Round trips of the heartbeat's probes to the peer, "
                       "one per relay.heartbeat-interval.";
    const std::string family = "relay_heartbeat_rtt_seconds";
    for (auto& b : buckets) {
      auto with_le = ls;
      auto le = b.value("le", json{});
      with_le.emplace_back("le", le.is_number() ? number(le.get<double>())
                                                : std::string{"+Inf"});
      out.add(family, "histogram", help, family + "_bucket", with_le,
              number(u64(b, "count")));
    }
    out.add(family, "histogram", help, family + "_sum", ls,
            number(rtt.value("sum_seconds", 0.0)));
    out.add(family, "histogram", help, family + "_count", ls,
            number(u64(rtt, "count")));
  }
}

void stats_metrics(exposition& out, const json& stats, uint64_t hidden_peers) {
  // Separate counters, not one split by a cause label: the node bumps the
  // two in turn, so a difference read between them could go backwards.
  out.counter("relay_messages_dropped_total",
              "Asynchronous messages that could not be delivered and had no "
              "sender to tell (no route, dead receiver, unregistered type, "
              "a full queue, ...).",
              {}, u64(stats, "dropped_messages"));
  out.counter("relay_overload_drops_total",
              "Of relay_messages_dropped_total: dropped because their "
              "connection's queue was at relay.max-queued-bytes.",
              {}, u64(stats, "overload_drops"));
  out.counter("relay_overload_rejections_total",
              "Requests answered with relay.overloaded at once, their "
              "connection's queue being full.",
              {}, u64(stats, "overload_rejections"));
  out.counter("relay_untrusted_refusals_total",
              "Messages and frames refused from untrusted peers.", {},
              u64(stats, "untrusted_drops"));
  out.counter("relay_inbound_pauses_total",
              "Times reading from a peer paused for back-pressure.", {},
              u64(stats, "inbound_pauses"));
  out.counter("relay_unknown_type_ids_total",
              "Messages whose type id is not registered here.", {},
              u64(stats, "unknown_type_ids"));
  out.counter("relay_protocol_errors_total",
              "Connections closed because the peer broke the protocol.", {},
              u64(stats, "protocol_errors"));
  out.counter("relay_rejected_peers_total",
              "Connections refused before or during the handshake.", {},
              u64(stats, "rejected_peers"));
  out.counter("relay_sessions_resumed_total",
              "Broken connections whose session resumed.", {},
              u64(stats, "resumed_sessions"));
  out.counter("relay_sessions_lost_total",
              "Broken connections whose session was given up.", {},
              u64(stats, "lost_sessions"));
  // Hidden connections (tools) get no series, and do not count here.
  auto connected = u64(stats, "connected_peers");
  connected -= std::min(connected, hidden_peers);
  out.gauge("relay_connected_peers",
            "Nodes connected now, hidden ones (tools) not counted (a break "
            "waiting to resume counts).",
            {}, static_cast<double>(connected));
}

void names_metrics(exposition& out, const json& names) {
  auto published = names.value("published", json::array());
  if (!published.is_array())
    return;
  out.gauge("relay_published_names", "Names published on this node.", {},
            static_cast<double>(published.size()));
  for (auto& entry : published) {
    if (!entry.contains("mailbox_remote"))
      continue;
    labels ls{{"name", str(entry, "name")}};
    out.counter("relay_actor_messages_received_total",
                "Messages from other nodes handed to the published actor.",
                ls, u64(entry, "messages_in"));
    out.gauge("relay_mailbox_remote_messages",
              "Messages from other nodes in the published actor's mailbox, "
              "not yet processed (local senders' are not counted).",
              ls, static_cast<double>(u64(entry, "mailbox_remote")));
  }
}

void supervisor_metrics(exposition& out, const json& sources) {
  if (!sources.is_array())
    return;
  for (auto& s : sources) {
    if (!s.is_object() || s.value("kind", std::string{}) != "supervisor")
      continue;
    auto name = str(s, "name");
    auto actor = str(s, "actor");
    out.counter("relay_supervisor_restarts_total",
                "Child restarts by the supervisor since it started.",
                {{"supervisor", name}, {"actor", actor}},
                u64(s, "restarts"));
    std::map<std::string, uint64_t> states;
    auto children = s.value("children", json::array());
    if (!children.is_array())
      continue;
    for (auto& c : children) {
      ++states[str(c, "state")];
      out.counter("relay_child_restarts_total",
                  "Restarts of one child of a supervisor.",
                  {{"supervisor", name}, {"actor", actor}, {"child",
                                                            str(c, "id")}},
                  u64(c, "restarts"));
    }
    for (auto& [state, n] : states)
      out.gauge("relay_supervisor_children",
                "Children of the supervisor, by state.",
                {{"supervisor", name}, {"actor", actor}, {"state", state}},
                static_cast<double>(n));
  }
}

} // namespace

std::string prometheus_text(const json& doc) {
  exposition out;
  if (doc.contains("node"))
    node_metrics(out, doc["node"]);
  uint64_t hidden = 0;
  if (doc.contains("node") && doc["node"].is_object())
    for (auto& p : doc["node"].value("peers", json::array()))
      if (p.is_object() && p.value("hidden", false))
        ++hidden;
  if (doc.contains("stats"))
    stats_metrics(out, doc["stats"], hidden);
  if (doc.contains("names"))
    names_metrics(out, doc["names"]);
  if (doc.contains("sources"))
    supervisor_metrics(out, doc["sources"]);
  return out.text();
}


} // namespace relay
