// The metrics endpoint (relay.metrics.listen) scraped over real HTTP on
// loopback and parsed as Prometheus parses the text format: two real nodes
// over a real Unix socket in this process, supervisors on one of them, and
// relayctl metrics as a real process.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <httplib.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "child_process.hpp"
#include "supervisor_reports.hpp"
#include "relay/node.hpp"
#include "relay/supervisor.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using relay::test::temp_dir;

// -- a reader of the text format -----------------------------------------------

/// One sample: name, labels, value.
struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// A scrape, parsed strictly: every sample belongs to a family announced by
/// # HELP and # TYPE lines before it, families are not interleaved, label
/// values use only the format's escapes. Failures go to `error`.
struct exposition {
  std::vector<sample> samples;
  std::map<std::string, std::string> types; // family -> type
  std::string error;

  /// Samples named `name` whose labels include `match`.
  std::vector<sample> find(const std::string& name,
                           const std::map<std::string, std::string>& match
                           = {}) const {
    std::vector<sample> result;
    for (auto& s : samples) {
      if (s.name != name)
        continue;
      bool ok = true;
      for (auto& [k, v] : match)
        if (auto i = s.labels.find(k); i == s.labels.end() || i->second != v)
          ok = false;
      if (ok)
        result.push_back(s);
    }
    return result;
  }

  /// The value of the one sample `name` with labels `match`, or NaN.
  double value(const std::string& name,
               const std::map<std::string, std::string>& match = {}) const {
    auto xs = find(name, match);
    return xs.size() == 1 ? xs[0].value : std::nan("");
  }
};

/// The family a sample name belongs to (histograms' suffixes removed).
std::string family_of(const std::string& name,
                      const std::map<std::string, std::string>& types) {
  for (auto suffix : {"_bucket", "_sum", "_count"}) {
    std::string s = suffix;
    if (name.size() > s.size()
        && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      auto base = name.substr(0, name.size() - s.size());
      if (auto i = types.find(base); i != types.end() && i->second == "histogram")
        return base;
    }
  }
  return name;
}

exposition parse_exposition(const std::string& text) {
  exposition out;
  std::set<std::string> helped;
  std::set<std::string> finished; // families whose samples ended
  std::string current;
  size_t pos = 0;
  auto fail = [&](const std::string& why, const std::string& line) {
    if (out.error.empty())
      out.error = why + ": '" + line + "'";
  };
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string::npos) {
      fail("no final line feed", text.substr(pos));
      break;
    }
    auto line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# HELP ", 0) == 0) {
      auto name = line.substr(7, line.find(' ', 7) - 7);
      if (!helped.insert(name).second)
        fail("HELP twice", line);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      auto rest = line.substr(7);
      auto sp = rest.find(' ');
      auto name = rest.substr(0, sp);
      auto type = rest.substr(sp + 1);
      if (type != "counter" && type != "gauge" && type != "histogram")
        fail("unknown type", line);
      if (!out.types.emplace(name, type).second)
        fail("TYPE twice", line);
      continue;
    }
    if (line.empty() || line[0] == '#') {
      fail("unexpected line", line);
      continue;
    }
    sample s;
    size_t i = 0;
    while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i]))
                               || line[i] == '_' || line[i] == ':'))
      ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        auto eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size()
            || line[eq + 1] != '"') {
          fail("malformed label", line);
          break;
        }
        auto key = line.substr(i, eq - i);
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] != '\\') {
            value += line[j];
            continue;
          }
          if (++j >= line.size())
            break;
          if (line[j] == 'n')
            value += '\n';
          else if (line[j] == '\\' || line[j] == '"')
            value += line[j];
          else
            fail("bad escape", line);
        }
        if (j >= line.size()) {
          fail("unterminated label value", line);
          break;
        }
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',')
          ++i;
      }
      ++i; // '}'
    }
    if (i >= line.size() || line[i] != ' ') {
      fail("no value", line);
      continue;
    }
    auto value = line.substr(i + 1);
    s.value = value == "+Inf" ? HUGE_VAL : std::stod(value);
    auto family = family_of(s.name, out.types);
    if (helped.count(family) == 0 || out.types.count(family) == 0)
      fail("sample before its HELP and TYPE", line);
    if (family != current) {
      if (!current.empty())
        finished.insert(current);
      if (finished.count(family) != 0)
        fail("family interleaved with another", line);
      current = family;
    }
    out.samples.push_back(std::move(s));
  }
  return out;
}

// -- fixture ------------------------------------------------------------------------

struct http_answer {
  int status = 0;
  std::string content_type;
  std::string body;
};

http_answer http_get(const std::string& address, const std::string& path) {
  auto colon = address.rfind(':');
  httplib::Client client{address.substr(0, colon),
                         std::stoi(address.substr(colon + 1))};
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  http_answer result;
  if (auto res = client.Get(path.c_str())) {
    result.status = res->status;
    result.content_type = res->get_header_value("Content-Type");
    result.body = res->body;
  }
  return result;
}

/// Waits up to 10 s for `pred`, checking every 10 ms (no event announces
/// a probe's answer or a processed message).
bool eventually(const std::function<bool()>& pred) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

caf::behavior echo() {
  return {[](int32_t x) { return x; }};
}

/// Processes nothing until the gate opens (a detached actor: it blocks).
struct gate {
  std::mutex mtx;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait_for(guard, 30s, [this] { return open; });
  }
  void release() {
    std::lock_guard<std::mutex> guard{mtx};
    open = true;
    cv.notify_all();
  }
};

class metrics : public ::testing::Test {
protected:
  void SetUp() override {
    server_cfg.node_name = "observed";
    server_cfg.metrics_listen = "127.0.0.1:0";
    // Probes every 20 ms: the round-trip histogram fills quickly.
    server_cfg.heartbeat_interval = 20ms;
    server.emplace(server_cfg);
    address = server->metrics_address();
    ASSERT_FALSE(address.empty());
    auto uri = server->listen(dir.uds("observed.sock"));
    ASSERT_TRUE(uri) << relay::describe(uri.error());
    server_uri = *uri;
    ASSERT_FALSE(server->publish(server->system().spawn(echo), "echo"));
    client_cfg.node_name = "client";
    client.emplace(client_cfg);
  }

  exposition scrape() {
    auto res = http_get(address, "/metrics");
    EXPECT_EQ(res.status, 200) << res.body;
    auto parsed = parse_exposition(res.body);
    EXPECT_EQ(parsed.error, "") << res.body;
    return parsed;
  }

  temp_dir dir;
  relay::node_config server_cfg;
  relay::node_config client_cfg;
  std::optional<relay::node> server;
  std::optional<relay::node> client;
  std::string server_uri;
  std::string address;
};

TEST_F(metrics, the_endpoint_serves_the_text_format_on_loopback) {
  EXPECT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
  auto res = http_get(address, "/metrics");
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.content_type, "text/plain; version=0.0.4; charset=utf-8");
  auto parsed = parse_exposition(res.body);
  EXPECT_EQ(parsed.error, "") << res.body;
  EXPECT_EQ(parsed.value("relay_node_info", {{"name", "observed"}}), 1);
  EXPECT_EQ(parsed.types["relay_messages_dropped_total"], "counter");
  EXPECT_EQ(parsed.types["relay_connected_peers"], "gauge");
  EXPECT_EQ(http_get(address, "/other").status, 404);
}

TEST_F(metrics, counts_messages_per_connection_and_per_published_actor) {
  auto echo_actor = client->lookup(server_uri, "echo");
  ASSERT_TRUE(echo_actor) << relay::describe(echo_actor.error());
  caf::scoped_actor self{client->system()};
  constexpr int n = 100;
  for (int32_t i = 0; i < n; ++i)
    self->request(*echo_actor, 10s, i)
      .receive([&](int32_t x) { EXPECT_EQ(x, i); },
               [](caf::error& err) { FAIL() << relay::describe(err); });
  std::map<std::string, std::string> peer{{"peer", "client"},
                                          {"transport", "uds"}};
  // The last answer can reach the client before the echo's mailbox
  // element is gone: wait for the gauge to settle.
  exposition parsed;
  ASSERT_TRUE(eventually([&] {
    parsed = scrape();
    return parsed.value("relay_mailbox_remote_messages", {{"name", "echo"}})
           == 0;
  }));
  EXPECT_EQ(parsed.value("relay_messages_received_total", peer), n);
  EXPECT_EQ(parsed.value("relay_messages_sent_total", peer), n);
  EXPECT_EQ(parsed.value("relay_actor_messages_received_total",
                         {{"name", "echo"}}),
            n);
  EXPECT_GT(parsed.value("relay_received_bytes_total", peer),
            parsed.value("relay_frames_received_total", peer));
  EXPECT_EQ(parsed.value("relay_connected_peers"), 1);
  EXPECT_EQ(parsed.value("relay_messages_dropped_total"), 0);
  EXPECT_EQ(parsed.value("relay_published_names"), 3); // echo + the node's two
}

TEST_F(metrics, heartbeat_round_trips_form_a_histogram) {
  ASSERT_TRUE(client->connect(server_uri));
  ASSERT_TRUE(eventually([&] {
    for (auto& p : server->peers())
      if (p.rtt.count >= 5)
        return true;
    return false;
  }));
  auto parsed = scrape();
  std::map<std::string, std::string> peer{{"peer", "client"}};
  EXPECT_EQ(parsed.types["relay_heartbeat_rtt_seconds"], "histogram");
  auto buckets = parsed.find("relay_heartbeat_rtt_seconds_bucket", peer);
  ASSERT_EQ(buckets.size(), relay::latency_histogram::bounds.size() + 1);
  double previous = 0;
  for (auto& b : buckets) {
    EXPECT_GE(b.value, previous) << "buckets are cumulative";
    previous = b.value;
  }
  EXPECT_EQ(buckets.back().labels["le"], "+Inf");
  auto count = parsed.value("relay_heartbeat_rtt_seconds_count", peer);
  EXPECT_GE(count, 5);
  EXPECT_EQ(buckets.back().value, count);
  // Round trips on loopback in one process: well under a second each.
  auto sum = parsed.value("relay_heartbeat_rtt_seconds_sum", peer);
  EXPECT_GT(sum, 0);
  EXPECT_LT(sum / count, 1.0);
  // The client, which probes too (default interval), knows its own.
  ASSERT_TRUE(eventually([&] {
    auto peers = client->peers();
    return !peers.empty() && peers[0].rtt.count > 0;
  }));
}

TEST_F(metrics, the_mailbox_gauge_counts_remote_messages_not_yet_processed) {
  auto g = std::make_shared<gate>();
  // Opened on every way out, or the actor would hold the teardown 30 s.
  struct opener {
    std::shared_ptr<gate> g;
    ~opener() {
      g->release();
    }
  } open_on_exit{g};
  auto slow = server->system().spawn<caf::detached>(
    [g](caf::event_based_actor*) -> caf::behavior {
      return {[g](int32_t) { g->wait(); }};
    });
  ASSERT_FALSE(server->publish(slow, "slow"));
  auto remote = client->lookup(server_uri, "slow");
  ASSERT_TRUE(remote) << relay::describe(remote.error());
  caf::scoped_actor self{client->system()};
  for (int32_t i = 0; i < 10; ++i)
    self->send(*remote, i);
  std::map<std::string, std::string> name{{"name", "slow"}};
  exposition parsed;
  ASSERT_TRUE(eventually([&] {
    parsed = scrape();
    return parsed.value("relay_actor_messages_received_total", name) == 10;
  }));
  // The first is in progress (its element lives until it returns).
  EXPECT_EQ(parsed.value("relay_mailbox_remote_messages", name), 10);
  g->release();
  EXPECT_TRUE(eventually([&] {
    return scrape().value("relay_mailbox_remote_messages", name) == 0;
  }));
  self->send_exit(slow, caf::exit_reason::user_shutdown);
}

TEST_F(metrics, supervisors_report_restarts_per_child) {
  caf::scoped_actor reports{server->system()};
  relay::supervisor_spec spec;
  spec.name = "pool";
  spec.node = &*server;
  spec.intensity = 5;
  spec.report_to = caf::actor{reports};
  std::vector<relay::child_spec> children;
  for (auto id : {"a", "b"}) {
    relay::child_spec c;
    c.id = id;
    c.start = [](caf::actor_system& sys) { return sys.spawn(echo); };
    children.push_back(std::move(c));
  }
  auto sup = relay::spawn_supervisor(server->system(), spec,
                                     std::move(children));
  ASSERT_TRUE(sup) << relay::describe(sup.error());
  caf::actor victim;
  for (int i = 0; i < 2; ++i)
    reports->receive(
      [&](relay::supervisor_report& r) {
        if (r.child_id == "a")
          victim = r.child;
      },
      caf::after(10s) >> [] { FAIL() << "no report"; });
  ASSERT_TRUE(victim);
  reports->send_exit(victim, caf::exit_reason::kill);
  ASSERT_TRUE(relay::test::wait_restart(reports, "a")) << "a was not restarted";
  auto parsed = scrape();
  EXPECT_EQ(parsed.value("relay_supervisor_restarts_total",
                         {{"supervisor", "pool"}}),
            1);
  EXPECT_EQ(parsed.value("relay_child_restarts_total",
                         {{"supervisor", "pool"}, {"child", "a"}}),
            1);
  EXPECT_EQ(parsed.value("relay_child_restarts_total",
                         {{"supervisor", "pool"}, {"child", "b"}}),
            0);
  EXPECT_EQ(parsed.value("relay_supervisor_children",
                         {{"supervisor", "pool"}, {"state", "running"}}),
            2);
  reports->send_exit(*sup, caf::exit_reason::user_shutdown);
  reports->wait_for(*sup);
}

TEST_F(metrics, hostile_peer_names_cannot_break_the_format) {
  relay::node_config cfg;
  cfg.node_name = "evil\" } 1\nrelay_fake 2\\\xff";
  relay::node evil{cfg};
  ASSERT_TRUE(evil.connect(server_uri));
  // connect() returns at the server's hello, maybe before it knows us.
  ASSERT_TRUE(eventually([&] { return !server->peers().empty(); }));
  auto parsed = scrape();
  EXPECT_TRUE(parsed.find("relay_fake").empty());
  auto sent = parsed.find("relay_messages_sent_total");
  std::set<std::string> names;
  for (auto& s : sent)
    names.insert(s.labels["peer"]);
  EXPECT_EQ(names.count("evil\" } 1\nrelay_fake 2\\\xEF\xBF\xBD"), 1u)
    << "the name, escaped, with U+FFFD for the bad byte";
}

TEST(metrics_config, bad_addresses_are_config_errors_that_say_why) {
  for (auto [listen, why] :
       std::vector<std::pair<std::string, std::string>>{
         {"9464", "no port"},
         {"127.0.0.1:", "the port must be a number"},
         {"127.0.0.1:99999", "the port must be a number"},
         {"::1:9464", "an IPv6 address needs brackets"},
         {"[::1", "malformed IPv6 address"},
         {":9464", "no host"},
         {"http://127.0.0.1:9464", "an address, not a URL"}}) {
    relay::node_config cfg;
    cfg.metrics_listen = listen;
    try {
      relay::node n{cfg};
      ADD_FAILURE() << listen << " was accepted";
    } catch (const relay::config_error& ex) {
      EXPECT_NE(std::string{ex.what()}.find(why), std::string::npos)
        << listen << ": " << ex.what();
    }
  }
}

TEST(metrics_config, a_port_in_use_is_a_config_error_and_ipv6_loopback_works) {
  {
    int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    bool ok = fd >= 0
              && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
                   == 0;
    if (fd >= 0)
      ::close(fd);
    if (!ok)
      GTEST_SKIP() << "no ::1 on this machine";
  }
  relay::node_config first_cfg;
  first_cfg.metrics_listen = "[::1]:0";
  relay::node first{first_cfg};
  auto address = first.metrics_address();
  ASSERT_EQ(address.rfind("[::1]:", 0), 0u) << address;
  relay::node_config second_cfg;
  second_cfg.metrics_listen = address;
  try {
    relay::node second{second_cfg};
    ADD_FAILURE() << address << " was bound twice";
  } catch (const relay::config_error& ex) {
    EXPECT_NE(std::string{ex.what()}.find("Address already in use"),
              std::string::npos)
      << ex.what();
  }
  relay::node_config off_cfg;
  relay::node off{off_cfg};
  EXPECT_EQ(off.metrics_address(), "");
}

TEST_F(metrics, relayctl_metrics_prints_the_same_families) {
  auto res = relay::test::run({RELAYCTL, "metrics", server_uri});
  ASSERT_EQ(res.status, 0) << res.output;
  auto parsed = parse_exposition(res.output);
  EXPECT_EQ(parsed.error, "") << res.output;
  EXPECT_EQ(parsed.value("relay_node_info", {{"name", "observed"}}), 1);
  // relayctl's own connection is hidden: no series for it.
  EXPECT_TRUE(parsed.find("relay_frames_received_total").empty()) << res.output;
  EXPECT_EQ(parsed.value("relay_connected_peers"), 0) << "hidden: not counted";
  EXPECT_EQ(parsed.value("relay_published_names"), 3);
  // Global options may follow the command.
  auto as_json = relay::test::run({RELAYCTL, "metrics", server_uri, "--json"});
  ASSERT_EQ(as_json.status, 0) << as_json.output;
  EXPECT_NE(as_json.output.find("\"text\""), std::string::npos);
}

TEST_F(metrics, only_loopback_hosts_may_ask_a_loopback_endpoint) {
  // A page on another site that rebinds its name to 127.0.0.1 sends its
  // own name as Host: refused, so it cannot read the node.
  auto colon = address.rfind(':');
  httplib::Client c{address.substr(0, colon),
                    std::stoi(address.substr(colon + 1))};
  for (auto [host, status] : std::vector<std::pair<std::string, int>>{
         {"evil.example:" + address.substr(colon + 1), 403},
         {"127.evil.example", 403},
         {"localhost:" + address.substr(colon + 1), 200},
         {"[::1]:" + address.substr(colon + 1), 200},
         {address, 200}}) {
    auto res = c.Get("/api/node", {{"Host", host}});
    ASSERT_TRUE(res) << host;
    EXPECT_EQ(res->status, status) << host;
    if (status == 403)
      EXPECT_NE(res->body.find("localhost, 127.0.0.1 or [::1]"),
                std::string::npos)
        << res->body;
  }
}

TEST_F(metrics, the_api_answers_the_introspection_documents) {
  auto res = http_get(address, "/api/node");
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.content_type, "application/json");
  EXPECT_NE(res.body.find("\"name\":\"observed\""), std::string::npos)
    << res.body;
  EXPECT_EQ(http_get(address, "/api/tree").status, 200);
  EXPECT_EQ(http_get(address, "/api/call").status, 404) << "no calls from HTTP";
  EXPECT_EQ(http_get(address, "/api/monitor").status, 404);
  auto page = http_get(address, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("Relay observer"), std::string::npos);
  EXPECT_EQ(page.body.find("http://"), page.body.find("http://www.w3.org"))
    << "no external assets";
}

TEST_F(metrics, relayctl_nodes_shows_the_last_round_trip) {
  ASSERT_TRUE(client->connect(server_uri));
  ASSERT_TRUE(eventually([&] {
    for (auto& p : server->peers())
      if (p.rtt.count > 0)
        return true;
    return false;
  }));
  auto res = relay::test::run({RELAYCTL, "nodes", server_uri});
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_NE(res.output.find("RTT"), std::string::npos) << res.output;
  EXPECT_NE(res.output.find(" ms"), std::string::npos) << res.output;
}

TEST(metrics_samples, the_supervised_pipeline_serves_its_restarts) {
  temp_dir dir;
  relay::test::child pipeline{{RELAY_SUPERVISED_PIPELINE, "--jobs", "2000",
                               "--crash-rate", "0.02", "--metrics",
                               "127.0.0.1:0", "--listen",
                               dir.uds("pipeline.sock")}};
  auto url = relay::test::wait_line(pipeline, "metrics on http://");
  ASSERT_TRUE(url);
  auto address = url->substr(0, url->find('/'));
  ASSERT_TRUE(relay::test::wait_line(pipeline, "finished; stop with SIGTERM"));
  auto res = http_get(address, "/metrics");
  ASSERT_EQ(res.status, 200) << res.body;
  auto parsed = parse_exposition(res.body);
  EXPECT_EQ(parsed.error, "") << res.body;
  EXPECT_EQ(parsed.value("relay_node_info", {{"name", "pipeline"}}), 1);
  // 2000 jobs at a crash rate of 2 %: the pool restarted workers, and the
  // per-child counts add up to the pool's.
  auto total = parsed.value("relay_supervisor_restarts_total",
                            {{"supervisor", "pool"}});
  EXPECT_GT(total, 0) << res.body;
  double sum = 0;
  for (auto& s : parsed.find("relay_child_restarts_total",
                             {{"supervisor", "pool"}}))
    sum += s.value;
  EXPECT_EQ(sum, total);
  EXPECT_EQ(pipeline.stop(SIGTERM, 20s), 0);
}

/// Debian's chromium, headless, with a profile in `dir` (it writes one).
std::vector<std::string> chromium(const temp_dir& dir) {
  return {"/usr/bin/chromium",  "--headless",
          "--no-sandbox", // root in a container has no user namespaces
          "--disable-gpu",      "--disable-dev-shm-usage",
          "--no-first-run",     "--disable-breakpad",
          "--user-data-dir=" + dir.path() + "/chromium-profile",
          "--window-size=1200,1000",
          // Runs the page's script (fetches and timers) for 4 s of its
          // time before the DOM or the picture is taken.
          "--virtual-time-budget=4000"};
}

TEST(observer_page, chromium_shows_the_tree_of_a_running_pipeline) {
  ASSERT_EQ(::access("/usr/bin/chromium", X_OK), 0)
    << "Debian's chromium is missing (scripts/setup installs it)";
  temp_dir dir;
  relay::test::child pipeline{{RELAY_SUPERVISED_PIPELINE, "--jobs", "2000",
                               "--crash-rate", "0.02", "--workers", "3",
                               "--metrics", "127.0.0.1:0", "--listen",
                               dir.uds("pipeline.sock")}};
  auto url = relay::test::wait_line(pipeline, "metrics on http://");
  ASSERT_TRUE(url);
  auto address = url->substr(0, url->find('/'));
  ASSERT_TRUE(relay::test::wait_line(pipeline, "finished; stop with SIGTERM"));
  auto metrics = parse_exposition(http_get(address, "/metrics").body);
  auto restarts = metrics.value("relay_supervisor_restarts_total",
                                {{"supervisor", "pool"}});
  ASSERT_GT(restarts, 0);
  // The page as the browser built it, script run: the pool and its workers
  // with their restart counts.
  auto args = chromium(dir);
  args.push_back("--dump-dom");
  args.push_back("http://" + address + "/");
  auto dom = relay::test::run(args, 60s);
  ASSERT_EQ(dom.status, 0) << dom.output;
  for (auto text : {"Relay observer", "node pipeline", "one_for_one",
                    "worker-0", "worker-1", "worker-2", "running"})
    EXPECT_NE(dom.output.find(text), std::string::npos)
      << text << " is not on the page:\n" << dom.output;
  auto pool_badge = "title=\"restarts\">"
                    + std::to_string(static_cast<int>(restarts)) + "<";
  EXPECT_NE(dom.output.find(pool_badge), std::string::npos)
    << "the pool's restart count " << restarts << " is not on the page";
  EXPECT_EQ(dom.output.find("<div id=\"tree\" class=\"dim\">"),
            std::string::npos)
    << "the tree is still the placeholder";
  // And a picture of it: a PNG of the window's size.
  auto png = dir.path() + "/observer.png";
  args = chromium(dir);
  args.push_back("--screenshot=" + png);
  args.push_back("http://" + address + "/");
  auto shot = relay::test::run(args, 60s);
  ASSERT_EQ(shot.status, 0) << shot.output;
  std::ifstream in{png, std::ios::binary};
  std::string bytes{std::istreambuf_iterator<char>{in}, {}};
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  auto be32 = [&](size_t at) {
    return (uint32_t{static_cast<uint8_t>(bytes[at])} << 24)
           | (uint32_t{static_cast<uint8_t>(bytes[at + 1])} << 16)
           | (uint32_t{static_cast<uint8_t>(bytes[at + 2])} << 8)
           | uint32_t{static_cast<uint8_t>(bytes[at + 3])};
  };
  EXPECT_EQ(be32(16), 1200u); // IHDR width
  EXPECT_EQ(be32(20), 1000u); // IHDR height
  // A blank page compresses to a few KiB; text, tables and a chart do not.
  EXPECT_GT(bytes.size(), 20000u);
  if (auto keep = std::getenv("RELAY_OBSERVER_SCREENSHOT"))
    std::ofstream{keep, std::ios::binary} << bytes;
  EXPECT_EQ(pipeline.stop(SIGTERM, 20s), 0);
}

} // namespace
