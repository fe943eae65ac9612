// Real processes: the ping_pong sample serves in a child process; this
// process and a second child talk to it over uds and over tcp. Synchronised on lines
// read from the children, bounded in time, and every child is killed and
// reaped (socket files removed with the temp dir) also when a test fails.

#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "relay/node.hpp"
#include "child_process.hpp"
#include "test_support.hpp"

extern char** environ;

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace ping_pong {
// Same layout and names as samples/ping_pong/messages.hpp.
struct ping {
  uint64_t seq = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, payload);
  }
};
struct pong {
  uint64_t seq = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, payload);
  }
};
} // namespace ping_pong

RELAY_MESSAGE_TYPE(ping_pong::ping, "ping_pong.ping")
RELAY_MESSAGE_TYPE(ping_pong::pong, "ping_pong.pong")

using relay::test::child;

/// Parameter: the transport scheme, "uds" or "tcp".
class multi_process : public ::testing::TestWithParam<std::string> {
protected:
  void TearDown() override {
    // A server killed with SIGKILL (every test's end, and some tests' point)
    // leaves its mq accept queue behind, like a socket file: remove it.
    if (GetParam() == "mq")
      ::mq_unlink(("/" + mq_name).c_str());
  }

  void SetUp() override {
    cookie = write_cookie("cookie", "multi-process-test-secret-0123456789");
    socket_path = dir.path() + "/pp.sock";
    // Queue names hold no '/': the temporary directory's name is unique.
    mq_name = dir.path().substr(dir.path().rfind('/') + 1) + "-pp";
    auto where = GetParam() == "tcp"  ? std::string{"tcp://127.0.0.1:0"}
                 : GetParam() == "mq" ? "mq:///" + mq_name
                                      : GetParam() + "://" + socket_path;
    server = std::make_unique<child>(std::vector<std::string>{
      RELAY_PING_PONG, "serve", where, "--cookie-file", cookie});
    ASSERT_TRUE(server->running());
    auto line = server->read_line();
    ASSERT_TRUE(line) << "ping_pong serve printed nothing";
    std::string prefix = "listening on ";
    ASSERT_EQ(line->rfind(prefix, 0), 0u) << *line;
    uri = line->substr(prefix.size());
    if (GetParam() != "tcp") {
      ASSERT_EQ(uri, where);
    } else {
      ASSERT_EQ(uri.rfind("tcp://127.0.0.1:", 0), 0u) << uri;
      ASSERT_NE(uri, where) << "port 0 must be replaced by the real port";
    }
  }

  /// Mappings of shm regions (memfd "relay-shm") in this process.
  static int mapped_regions() {
    std::ifstream maps{"/proc/self/maps"};
    int count = 0;
    for (std::string line; std::getline(maps, line);)
      count += line.find("relay-shm") != std::string::npos;
    return count;
  }

  static std::vector<std::string> dev_shm_entries() {
    std::vector<std::string> result;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator{"/dev/shm", ec})
      result.push_back(e.path().string());
    std::sort(result.begin(), result.end());
    return result;
  }

  std::vector<std::string> dev_shm_before = dev_shm_entries();

  /// A ping_pong pinger with the right cookie does 3 round trips and exits 0.
  void expect_serves_a_pinger() {
    child good{{RELAY_PING_PONG, "ping", uri, "--count", "3", "--cookie-file",
                cookie}};
    while (good.read_line()) {
    }
    auto status = good.stop(0);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 0);
  }

  /// A node of this process that talks to the ping_pong server.
  void configure_client(node_config& cfg) {
    cfg.add_message_type<ping_pong::ping>().add_message_type<ping_pong::pong>();
    cfg.cookie_file = cookie;
  }

  /// A 0600 file holding `secret`.
  std::string write_cookie(const std::string& name, const std::string& secret) {
    auto path = dir.path() + "/" + name;
    std::ofstream{path} << secret << "\n";
    ::chmod(path.c_str(), 0600);
    return path;
  }

  temp_dir dir;
  std::string cookie;
  std::string socket_path;
  std::string mq_name;
  std::string uri;
  std::unique_ptr<child> server;
};

// What only some transports do: socket files (uds, and the rendezvous of
// shm), cookies (tcp), message queues (mq).
class multi_process_uds : public multi_process {};
class multi_process_tcp : public multi_process {};
class multi_process_mq : public multi_process {
protected:
  /// The message queues process `pid` holds open, as /proc shows them:
  /// "/name" or "/name (deleted)" once unlinked. Only ours (mq_name).
  std::vector<std::string> queues_of(pid_t pid) {
    std::vector<std::string> result;
    std::error_code ec;
    auto dir = "/proc/" + std::to_string(pid) + "/fd";
    for (auto& e : std::filesystem::directory_iterator{dir, ec}) {
      auto target = std::filesystem::read_symlink(e.path(), ec);
      if (!ec && target.string().rfind("/" + mq_name, 0) == 0)
        result.push_back(target.string());
    }
    std::sort(result.begin(), result.end());
    return result;
  }

  /// Waits (bounded) until queues_of(pid) satisfies `pred`.
  template <class Pred>
  bool wait_queues(pid_t pid, Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred(queues_of(pid)))
        return true;
      std::this_thread::sleep_for(5ms); // /proc has no change notification
    }
    return pred(queues_of(pid));
  }
};

TEST_P(multi_process_mq, a_killed_client_leaves_no_queue_behind) {
  // Only the accept queue while nobody is connected.
  ASSERT_EQ(queues_of(server->pid()), std::vector<std::string>{"/" + mq_name});
  child pinger{{RELAY_PING_PONG, "ping", uri, "--count", "10000000",
                "--cookie-file", cookie}};
  // Connected: the pair is open in the server, and already unlinked.
  auto connected = [&](const std::vector<std::string>& qs) {
    return qs.size() == 3;
  };
  ASSERT_TRUE(wait_queues(server->pid(), connected));
  auto held = queues_of(server->pid());
  for (auto& q : held)
    if (q != "/" + mq_name)
      EXPECT_NE(q.find(" (deleted)"), std::string::npos)
        << q << " still has its name while connected";
  EXPECT_EQ(queues_of(pinger.pid()).size(), 2u);
  pinger.stop(SIGKILL);
  // The server learns of the death (pidfd) and closes its side: with both
  // descriptors gone, the kernel frees the queues; no name was left.
  EXPECT_TRUE(wait_queues(server->pid(), [&](const std::vector<std::string>& qs) {
    return qs == std::vector<std::string>{"/" + mq_name};
  })) << "the server still holds a dead client's queues";
  // And it goes on serving.
  expect_serves_a_pinger();
}

TEST_P(multi_process_mq, a_killed_listener_is_refused_at_once_then_taken_over) {
  server->stop(SIGKILL);
  // Its accept queue outlives it (like a socket file), but nobody holds
  // the lock: a client is told at once instead of waiting for a timeout.
  node_config cfg;
  configure_client(cfg);
  node n{cfg};
  auto begin = std::chrono::steady_clock::now();
  auto remote = n.lookup(uri, "pong");
  ASSERT_FALSE(remote);
  EXPECT_NE(describe(remote.error()).find("left from a listener that exited"),
            std::string::npos)
    << describe(remote.error());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);
  // A new listener takes the name over.
  server = std::make_unique<child>(std::vector<std::string>{
    RELAY_PING_PONG, "serve", uri, "--cookie-file", cookie});
  auto line = server->read_line();
  ASSERT_TRUE(line);
  EXPECT_EQ(*line, "listening on " + uri);
  auto again = n.lookup(uri, "pong");
  ASSERT_TRUE(again) << describe(again.error());
  // While it lives, a second listener is refused.
  child second{{RELAY_PING_PONG, "serve", uri, "--cookie-file", cookie},
               /*merge_stderr=*/true};
  std::string all;
  while (auto l = second.read_line())
    all += *l + "\n";
  EXPECT_NE(all.find("another listener serves this queue"), std::string::npos)
    << all;
}

TEST_P(multi_process_uds, socket_file_is_private_and_removed_on_sigterm) {
  struct stat st {};
  ASSERT_EQ(stat(socket_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto status = server->stop(SIGTERM);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0);
  EXPECT_FALSE(std::filesystem::exists(socket_path));
}

TEST_P(multi_process, ping_process_completes_round_trips) {
  child pinger{{RELAY_PING_PONG, "ping", uri, "--count", "200", "--size",
                "256", "--cookie-file", cookie}};
  std::string last;
  while (auto line = pinger.read_line())
    last = *line;
  auto status = pinger.stop(0);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0);
  EXPECT_NE(last.find("\"count\": 200"), std::string::npos) << last;
  EXPECT_NE(last.find("\"p50_us\""), std::string::npos) << last;
  EXPECT_NE(last.find("\"p99_us\""), std::string::npos) << last;
}

TEST_P(multi_process, killed_peer_process_reports_down_and_fails_requests) {
  node_config cfg;
  configure_client(cfg);
  node n{cfg};
  auto remote = n.lookup(uri, "pong");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{n.system()};
  self->request(*remote, 5s, ping_pong::ping{1, "across processes"})
    .receive([](const ping_pong::pong& x) { EXPECT_EQ(x.payload, "across processes"); },
             [](caf::error& err) { ADD_FAILURE() << describe(err); });
  EXPECT_EQ(mapped_regions(), GetParam() == "shm" ? 1 : 0);
  self->monitor(*remote);
  server->stop(SIGKILL);
  self->receive(
    [](const caf::down_msg& dm) {
      EXPECT_EQ(dm.reason, caf::exit_reason::remote_link_unreachable);
    },
    caf::after(10s) >> [] { ADD_FAILURE() << "no DOWN after kill -9"; });
  self->request(*remote, 60s, ping_pong::ping{2, "too late"})
    .receive([](const ping_pong::pong&) { ADD_FAILURE() << "reply from the dead"; },
             [](caf::error& err) { EXPECT_TRUE(err); });
  // The connection is gone by the time of the DOWN: an shm region is
  // unmapped, and shared memory never had a name in /dev/shm.
  EXPECT_EQ(mapped_regions(), 0) << "an shm region is still mapped";
  EXPECT_EQ(dev_shm_entries(), dev_shm_before);
}

TEST_P(multi_process, stopped_peer_process_is_down_within_the_heartbeat_timeout) {
  // The peer is alive at the transport level (its socket stays open, the
  // kernel even buffers for it) but answers nothing: only heartbeats tell.
  node_config cfg;
  configure_client(cfg);
  node n{cfg};
  auto remote = n.lookup(uri, "pong");
  ASSERT_TRUE(remote) << describe(remote.error());
  caf::scoped_actor self{n.system()};
  n.monitor_node(self, (*remote)->node());
  self->monitor(*remote);
  server->signal(SIGSTOP);
  auto stopped = std::chrono::steady_clock::now();
  auto bound = cfg.heartbeat_timeout + std::chrono::seconds{1};
  bool got_down = false;
  bool got_node_down = false;
  while (!(got_down && got_node_down))
    self->receive(
      [&](const caf::down_msg& dm) {
        got_down = true;
        EXPECT_EQ(dm.reason, caf::exit_reason::remote_link_unreachable);
      },
      [&](const node_down_msg& x) {
        got_node_down = true;
        EXPECT_TRUE(is(x.reason, errc::heartbeat_timeout)) << describe(x.reason);
      },
      caf::after(std::chrono::duration_cast<std::chrono::milliseconds>(bound)
                 * 2)
        >> [&] {
            ADD_FAILURE() << "no DOWN for a stopped peer";
            got_down = got_node_down = true;
          });
  auto elapsed = std::chrono::steady_clock::now() - stopped;
  EXPECT_LT(elapsed, bound);
  // Never before the timeout minus the two intervals by which the peer's
  // last heartbeat may predate the stop.
  EXPECT_GE(elapsed, cfg.heartbeat_timeout - 2 * cfg.heartbeat_interval);
  server->signal(SIGCONT);
}

TEST_P(multi_process_tcp, ping_with_a_wrong_cookie_fails_clearly) {
  auto wrong = write_cookie("wrong", "not-the-right-secret-at-all-0123");
  child pinger{{RELAY_PING_PONG, "ping", uri, "--count", "3", "--cookie-file",
                wrong},
               /*merge_stderr=*/true};
  std::string all;
  while (auto line = pinger.read_line())
    all += *line + "\n";
  auto status = pinger.stop(0);
  ASSERT_TRUE(status);
  EXPECT_NE(*status, 0) << all;
  EXPECT_NE(all.find("authentication failed"), std::string::npos) << all;
  EXPECT_NE(all.find(uri), std::string::npos) << all;
  // The server goes on serving the right cookie.
  expect_serves_a_pinger();
}

TEST_P(multi_process, cookie_file_readable_by_others_is_refused) {
  auto loose = write_cookie("loose", "multi-process-test-secret-0123456789");
  ::chmod(loose.c_str(), 0644);
  child pinger{{RELAY_PING_PONG, "ping", uri, "--cookie-file", loose},
               /*merge_stderr=*/true};
  std::string all;
  while (auto line = pinger.read_line())
    all += *line + "\n";
  auto status = pinger.stop(0);
  ASSERT_TRUE(status);
  EXPECT_NE(*status, 0) << all;
  EXPECT_NE(all.find("mode 0644"), std::string::npos) << all;
  EXPECT_NE(all.find("chmod 600"), std::string::npos) << all;
}

auto scheme_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

INSTANTIATE_TEST_SUITE_P(over, multi_process,
                         ::testing::Values("uds", "tcp", "shm", "mq"),
                         scheme_name);
INSTANTIATE_TEST_SUITE_P(over, multi_process_mq, ::testing::Values("mq"),
                         scheme_name);
INSTANTIATE_TEST_SUITE_P(over, multi_process_uds,
                         ::testing::Values("uds", "shm"), scheme_name);
INSTANTIATE_TEST_SUITE_P(over, multi_process_tcp, ::testing::Values("tcp"),
                         scheme_name);
