// OS processes as supervisor children, as real processes: started over an
// inherited socketpair, reachable, restarted after kill -9, stopped with
// SIGTERM, replaced when hung, given up on when they cannot start. Every
// wait is on a report or a DOWN and bounded; no zombie is left.

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <caf/all.hpp>

#include "relay/node.hpp"
#include "relay/process_child.hpp"
#include "relay/supervisor.hpp"

using namespace std::chrono_literals;

namespace relay {
// Issue 11's bound on a restart after kill -9, for a normal build. ASan
// makes every process start far slower (a child's start alone takes about
// 0.9 s there), so the sanitizer run checks the behaviour with more room.
#if defined(__SANITIZE_ADDRESS__)
constexpr double restart_bound_ms = 5000.0;
#else
constexpr double restart_bound_ms = 1000.0;
#endif

namespace {

bool process_exists(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

class process_child : public ::testing::Test {
protected:
  void SetUp() override {
    cfg.node_name = "parent";
    cfg.heartbeat_interval = 100ms;
    cfg.heartbeat_timeout = 300ms;
    add_supervisor_types(cfg);
    n = std::make_unique<node>(cfg);
    self = std::make_unique<caf::scoped_actor>(n->system());
  }

  void TearDown() override {
    for (auto& s : sups) {
      (*self)->send_exit(s, caf::exit_reason::user_shutdown);
      (*self)->wait_for(s);
    }
    self.reset();
    n.reset();
    // No zombie: every child was reaped by the watcher.
    errno = 0;
    EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
  }

  child_spec child(std::vector<std::string> args = {}) {
    process_spec p;
    p.executable = RELAY_PROCESS_CHILD;
    p.args = std::move(args);
    p.start_timeout = 5s;
    child_spec c;
    c.id = "proc";
    c.start = process_start(*n, p);
    c.shutdown = shutdown_policy::after(5s);
    return c;
  }

  caf::expected<supervisor_actor> start(std::vector<child_spec> children,
                                        uint32_t intensity = 5) {
    supervisor_spec spec;
    spec.name = "procs";
    spec.intensity = intensity;
    spec.period = 10s;
    auto sup = spawn_supervisor(n->system(), spec, std::move(children));
    if (!sup)
      return sup;
    sups.push_back(caf::actor_cast<caf::actor>(*sup));
    auto& s = *self;
    s->send(*sup, subscribe_reports_atom::value, caf::actor{s.ptr()});
    s->monitor(*sup);
    caf::error err;
    s->request(*sup, 20s, wait_started_atom::value)
      .receive([](ok_atom) {}, [&](caf::error& e) { err = e; });
    if (err)
      return err;
    return sup;
  }

  std::optional<supervisor_report> next_report(supervisor_report::kind k,
                                               caf::timespan timeout = 10s) {
    std::optional<supervisor_report> result;
    bool timed_out = false;
    (*self)->receive_while([&] { return !result && !timed_out; })(
      [&](supervisor_report& r) {
        if (r.what == k && (k != supervisor_report::kind::started || r.restart))
          result = std::move(r);
      },
      [&](caf::down_msg&) {}, caf::after(timeout) >> [&] { timed_out = true; });
    return result;
  }

  /// The pid and node behind process actor `proc`.
  std::pair<pid_t, caf::node_id> info(const caf::actor& proc) {
    std::pair<pid_t, caf::node_id> result{0, caf::node_id{}};
    (*self)->request(proc, 10s, process_info_atom::value)
      .receive([&](int32_t pid, caf::node_id& nid) { result = {pid, nid}; },
               [](caf::error&) {});
    return result;
  }

  /// Whether "echo" on the child's node answers.
  bool echo_answers(const caf::node_id& nid) {
    auto echo = n->lookup(nid, "echo");
    if (!echo)
      return false;
    std::string answer;
    (*self)->request(*echo, 10s, std::string{"hi"})
      .receive([&](std::string& x) { answer = x; }, [](caf::error&) {});
    return answer == "hi";
  }

  caf::actor child_handle(const supervisor_actor& sup) {
    caf::actor result;
    (*self)->request(sup, 10s, which_children_atom::value)
      .receive([&](std::vector<child_info>& xs) {
                 if (!xs.empty())
                   result = xs[0].handle;
               },
               [](caf::error&) {});
    return result;
  }

  node_config cfg;
  std::unique_ptr<node> n;
  std::unique_ptr<caf::scoped_actor> self;
  std::vector<caf::actor> sups;
};

TEST_F(process_child, starts_reachable_and_stops_with_sigterm) {
  auto sup = start({child()});
  ASSERT_TRUE(sup) << describe(sup.error());
  auto proc = child_handle(*sup);
  ASSERT_TRUE(proc);
  auto [pid, nid] = info(proc);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(process_exists(pid));
  EXPECT_TRUE(echo_answers(nid));
  (*self)->send_exit(*sup, caf::exit_reason::user_shutdown);
  std::optional<caf::error> down;
  (*self)->receive_while([&] { return !down; })(
    [&](caf::down_msg& dm) {
      if (dm.source == sup->address())
        down = dm.reason;
    },
    [](supervisor_report&) {}, caf::after(10s) >> [&] { down = caf::sec::request_timeout; });
  EXPECT_EQ(*down, caf::make_error(caf::exit_reason::user_shutdown)) << describe(*down);
  EXPECT_EQ(count_if(sups.begin(), sups.end(), [](auto&) { return true; }), 1);
  sups.clear();
  EXPECT_FALSE(process_exists(pid)) << "stopped and reaped";
}

TEST_F(process_child, a_child_over_two_pipes_is_reachable_and_restarted) {
  process_spec p;
  p.executable = RELAY_PROCESS_CHILD;
  p.channel = "pipe";
  child_spec c;
  c.id = "proc";
  c.start = process_start(*n, p);
  auto sup = start({c});
  ASSERT_TRUE(sup) << describe(sup.error());
  auto [pid, nid] = info(child_handle(*sup));
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(echo_answers(nid));
  ::kill(pid, SIGKILL);
  auto back = next_report(supervisor_report::kind::started);
  ASSERT_TRUE(back);
  auto [pid2, nid2] = info(back->child);
  EXPECT_NE(pid2, pid);
  EXPECT_TRUE(echo_answers(nid2));
}

TEST_F(process_child, kill_9_is_a_crash_and_the_process_comes_back_reachable) {
  auto sup = start({child()}, 50);
  ASSERT_TRUE(sup) << describe(sup.error());
  std::vector<double> restart_ms;
  for (int i = 0; i < 20; ++i) {
    auto [pid, nid] = info(child_handle(*sup));
    ASSERT_GT(pid, 0);
    auto killed_at = std::chrono::steady_clock::now();
    ::kill(pid, SIGKILL);
    auto crash = next_report(supervisor_report::kind::child_terminated);
    ASSERT_TRUE(crash);
    EXPECT_TRUE(is(crash->reason, process_errc::killed)) << describe(crash->reason);
    EXPECT_NE(describe(crash->reason).find("signal 9"), std::string::npos)
      << describe(crash->reason);
    auto back = next_report(supervisor_report::kind::started);
    ASSERT_TRUE(back);
    auto [pid2, nid2] = info(back->child);
    EXPECT_NE(pid2, pid);
    EXPECT_TRUE(echo_answers(nid2));
    restart_ms.push_back(std::chrono::duration<double, std::milli>(
                           std::chrono::steady_clock::now() - killed_at)
                           .count());
    EXPECT_LT(restart_ms.back(), restart_bound_ms)
      << "back and reachable in under " << restart_bound_ms << " ms";
  }
  std::sort(restart_ms.begin(), restart_ms.end());
  std::printf("restart after kill -9, back and answering, 20 kills: median "
              "%.1f ms, max %.1f ms\n",
              restart_ms[restart_ms.size() / 2], restart_ms.back());
}

TEST_F(process_child, a_process_that_cannot_start_fails_the_start_clearly) {
  auto sup = start({child({"--fail-at-start"})});
  ASSERT_FALSE(sup);
  EXPECT_TRUE(is(sup.error(), supervisor_errc::failed_to_start_child))
    << describe(sup.error());
  EXPECT_NE(describe(sup.error()).find("exit status 3"), std::string::npos)
    << describe(sup.error());
  sups.clear();
}

TEST_F(process_child, a_process_that_is_never_ready_is_killed_at_the_start_timeout) {
  auto c = child({"--never-ready"});
  process_spec p;
  p.executable = RELAY_PROCESS_CHILD;
  p.args = {"--never-ready"};
  p.start_timeout = 300ms;
  c.start = process_start(*n, p);
  auto sup = start({c});
  ASSERT_FALSE(sup);
  EXPECT_NE(describe(sup.error()).find("not_ready"), std::string::npos)
    << describe(sup.error());
  sups.clear();
}

TEST_F(process_child, a_hung_process_is_noticed_by_its_heartbeat_and_replaced) {
  auto sup = start({child()});
  ASSERT_TRUE(sup) << describe(sup.error());
  auto [pid, nid] = info(child_handle(*sup));
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGSTOP);
  auto crash = next_report(supervisor_report::kind::child_terminated, 5s);
  ASSERT_TRUE(crash);
  EXPECT_TRUE(is(crash->reason, process_errc::hung)) << describe(crash->reason);
  auto back = next_report(supervisor_report::kind::started);
  ASSERT_TRUE(back);
  auto [pid2, nid2] = info(back->child);
  EXPECT_NE(pid2, pid);
  EXPECT_TRUE(echo_answers(nid2));
  EXPECT_FALSE(process_exists(pid)) << "the hung process was killed and reaped";
}

} // namespace
} // namespace relay
