// Supervision across real nodes: remote spawn, a remote child that crashes
// and is restarted on its node, names that follow restarts, and a worker
// node process killed with SIGKILL. Synchronised on supervisor reports and
// DOWN messages, every wait bounded.

#include <gtest/gtest.h>

#include <fstream>

#include <caf/all.hpp>

#include "child_process.hpp"
#include "relay/named_actor.hpp"
#include "relay/node.hpp"
#include "relay/supervisor.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace relay {
namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using whoami_atom = caf::atom_constant<caf::atom("whoami")>;

/// Registered on the worker node as "test.worker": answers whoami with its
/// node's name and quits on crash.
caf::behavior test_worker(caf::event_based_actor* self, std::string tag) {
  return {
    [=](whoami_atom) { return tag + "@" + caf::to_string(self->node()); },
    [=](crash_atom) {
      self->quit(caf::make_error(caf::sec::runtime_error, "crash requested"));
    },
  };
}

class supervision : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    auto cookie = dir.path() + "/cookie";
    std::ofstream{cookie} << "supervision-test-secret-0123456789\n";
    ::chmod(cookie.c_str(), 0600);
    for (auto* cfg : {&host_cfg, &sup_cfg}) {
      cfg->cookie_file = cookie;
      add_supervisor_types(*cfg);
    }
    host_cfg.add_actor_type("test.worker", test_worker);
    host_cfg.node_name = "host";
    sup_cfg.node_name = "sup";
    host = std::make_unique<node>(host_cfg);
    sup_node = std::make_unique<node>(sup_cfg);
    auto where = GetParam() == "tcp" ? std::string{"tcp://127.0.0.1:0"}
                                     : GetParam() + "://" + dir.path() + "/host.sock";
    auto real = host->listen(where);
    ASSERT_TRUE(real) << describe(real.error());
    uri = *real;
  }

  void TearDown() override {
    if (self)
      for (auto& a : actors) {
        self->send_exit(a, caf::exit_reason::user_shutdown);
        self->wait_for(a);
      }
    actors.clear();
    self.reset();
    sup_node.reset();
    host.reset();
  }

  /// Waits up to `timeout` for a report of kind `k` (others are skipped;
  /// for `started`, only restarts count).
  std::optional<supervisor_report> next_report(supervisor_report::kind k,
                                               caf::timespan timeout = 10s) {
    std::optional<supervisor_report> result;
    bool timed_out = false;
    self->receive_while([&] { return !result && !timed_out; })(
      [&](supervisor_report& r) {
        if (r.what == k
            && (k != supervisor_report::kind::started || r.restart))
          result = std::move(r);
      },
      [&](caf::down_msg&) {},
      caf::after(timeout) >> [&] { timed_out = true; });
    return result;
  }

  supervisor_actor start_supervisor(std::vector<child_spec> children,
                                    uint32_t intensity = 3) {
    supervisor_spec spec;
    spec.name = "remote-test";
    spec.intensity = intensity;
    spec.node = sup_node.get();
    auto sup = spawn_supervisor(sup_node->system(), spec, std::move(children));
    EXPECT_TRUE(sup) << describe(sup.error());
    actors.push_back(caf::actor_cast<caf::actor>(*sup));
    self->send(*sup, subscribe_reports_atom::value, caf::actor{self.get()});
    self->monitor(*sup);
    caf::error err;
    self->request(*sup, 10s, wait_started_atom::value)
      .receive([](ok_atom) {}, [&](caf::error& e) { err = e; });
    EXPECT_FALSE(err) << describe(err);
    return *sup;
  }

  caf::actor child_handle(const supervisor_actor& sup, const std::string& id) {
    caf::actor result;
    self->request(sup, 10s, which_children_atom::value)
      .receive(
        [&](std::vector<child_info>& xs) {
          for (auto& x : xs)
            if (x.id == id)
              result = x.handle;
        },
        [](caf::error&) {});
    return result;
  }

  std::string whoami(const caf::actor& who) {
    std::string result;
    self->request(who, 10s, whoami_atom::value)
      .receive([&](std::string& s) { result = s; },
               [&](caf::error& err) { result = describe(err); });
    return result;
  }

  test::temp_dir dir;
  node_config host_cfg;
  node_config sup_cfg;
  std::unique_ptr<node> host;
  std::unique_ptr<node> sup_node;
  std::string uri;
  /// The test's own actor on the supervisor's node (made by make_self).
  struct scoped {
    std::unique_ptr<caf::scoped_actor> ptr;
    caf::blocking_actor* operator->() { return ptr->ptr(); }
    caf::blocking_actor* get() { return ptr->ptr(); }
    explicit operator bool() const { return ptr != nullptr; }
    void reset() { ptr.reset(); }
  } self;
  std::vector<caf::actor> actors;

  void make_self() {
    self.ptr = std::make_unique<caf::scoped_actor>(sup_node->system());
  }
};

TEST_P(supervision, spawn_on_reports_clear_errors) {
  auto ok = sup_node->spawn_on(uri, "test.worker", std::string{"w"});
  ASSERT_TRUE(ok) << describe(ok.error());
  EXPECT_EQ((*ok)->node(), host->id());
  make_self();
  EXPECT_EQ(whoami(*ok).substr(0, 2), "w@");
  actors.push_back(*ok);
  auto unknown = sup_node->spawn_on(uri, "no.such.type");
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(is(unknown.error(), errc::unknown_actor_type)) << describe(unknown.error());
  auto bad_args = sup_node->spawn_on(uri, "test.worker", 42);
  ASSERT_FALSE(bad_args);
  EXPECT_TRUE(is(bad_args.error(), errc::invalid_spawn_arguments))
    << describe(bad_args.error());
  auto unreachable = sup_node->spawn_on(caf::node_id{}, "test.worker");
  ASSERT_FALSE(unreachable);
  EXPECT_TRUE(is(unreachable.error(), errc::node_unreachable))
    << describe(unreachable.error());
  // By node id, once connected.
  auto by_id = sup_node->spawn_on(host->id(), "test.worker", std::string{"v"});
  ASSERT_TRUE(by_id) << describe(by_id.error());
  actors.push_back(*by_id);
}

TEST_P(supervision, a_remote_child_crashes_and_is_restarted_on_its_node) {
  make_self();
  child_spec remote;
  remote.id = "remote";
  remote.start = remote_start(*sup_node, uri, "test.worker",
                              caf::make_message(std::string{"r"}));
  auto sup = start_supervisor({remote});
  auto first = child_handle(sup, "remote");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->node(), host->id());
  self->send(first, crash_atom::value);
  auto crash = next_report(supervisor_report::kind::child_terminated);
  ASSERT_TRUE(crash);
  EXPECT_NE(describe(crash->reason).find("crash requested"), std::string::npos)
    << describe(crash->reason);
  auto restarted = next_report(supervisor_report::kind::started);
  ASSERT_TRUE(restarted);
  EXPECT_TRUE(restarted->restart);
  ASSERT_TRUE(restarted->child);
  EXPECT_NE(restarted->child, first);
  EXPECT_EQ(restarted->child->node(), host->id());
  EXPECT_EQ(whoami(restarted->child).substr(0, 2), "r@");
}

TEST_P(supervision, a_named_child_is_found_under_its_name_after_a_restart) {
  make_self();
  child_spec named;
  named.id = "svc";
  named.name = "svc";
  named.start = [](caf::actor_system& sys) {
    return sys.spawn(test_worker, std::string{"local"});
  };
  auto sup = start_supervisor({named});
  auto first = sup_node->whereis("svc");
  ASSERT_TRUE(first);
  auto forwarder = named_actor(*sup_node, "svc");
  actors.push_back(forwarder);
  EXPECT_EQ(whoami(forwarder).substr(0, 6), "local@");
  auto sup_uri = sup_node->listen(GetParam() == "tcp"
                                    ? std::string{"tcp://127.0.0.1:0"}
                                    : GetParam() + "://" + dir.path() + "/sup.sock");
  ASSERT_TRUE(sup_uri) << describe(sup_uri.error());
  self->send(first, crash_atom::value);
  auto restarted = next_report(supervisor_report::kind::started);
  ASSERT_TRUE(restarted);
  auto second = sup_node->whereis("svc");
  ASSERT_TRUE(second);
  EXPECT_NE(second, first);
  EXPECT_EQ(second, restarted->child);
  // The forwarder follows the new incarnation, and another node that looks
  // the name up again reaches it.
  EXPECT_EQ(whoami(forwarder).substr(0, 6), "local@");
  auto remote_view = host->lookup(*sup_uri, "svc");
  ASSERT_TRUE(remote_view) << describe(remote_view.error());
  EXPECT_EQ((*remote_view)->id(), second->id());
}

TEST_P(supervision, a_killed_worker_node_is_a_crash_and_restarts_follow_the_rules) {
  // The worker node is a real process: the sample, serving workers.
  auto cookie = dir.path() + "/cookie";
  auto where = GetParam() == "tcp" ? std::string{"tcp://127.0.0.1:0"}
                                   : GetParam() + "://" + dir.path() + "/proc.sock";
  test::child proc{{RELAY_SUPERVISED_PIPELINE, "--serve", where, "--cookie-file", cookie}};
  ASSERT_TRUE(proc.running());
  auto line = proc.read_line();
  ASSERT_TRUE(line) << "the worker process printed nothing";
  std::string prefix = "listening on ";
  ASSERT_EQ(line->rfind(prefix, 0), 0u) << *line;
  auto proc_uri = line->substr(prefix.size());
  make_self();
  child_spec remote;
  remote.id = "far";
  remote.start = remote_start(*sup_node, proc_uri, "pipeline.worker",
                              caf::make_message(0.0, uint64_t{1}));
  auto sup = start_supervisor({remote}, 2);
  auto far = child_handle(sup, "far");
  ASSERT_TRUE(far);
  proc.stop(SIGKILL);
  auto crash = next_report(supervisor_report::kind::child_terminated);
  ASSERT_TRUE(crash);
  EXPECT_EQ(crash->reason, caf::make_error(caf::exit_reason::remote_link_unreachable))
    << describe(crash->reason);
  // Restarting on a node that is gone fails; each attempt counts: restart
  // 1 and 2 fail, restart 3 exceeds the intensity of 2.
  ASSERT_TRUE(next_report(supervisor_report::kind::start_error));
  ASSERT_TRUE(next_report(supervisor_report::kind::start_error));
  ASSERT_TRUE(next_report(supervisor_report::kind::reached_max_restart_intensity));
  std::optional<caf::error> down;
  self->receive_while([&] { return !down; })(
    [&](caf::down_msg& dm) {
      if (dm.source == sup.address())
        down = dm.reason;
    },
    [](supervisor_report&) {},
    caf::after(10s) >> [&] { down = caf::make_error(caf::sec::request_timeout); });
  EXPECT_EQ(*down, caf::make_error(caf::exit_reason::user_shutdown)) << describe(*down);
  actors.clear();
}

TEST_P(supervision, the_sample_runs_its_workers_on_another_node_and_loses_no_job) {
  auto cookie = dir.path() + "/cookie";
  auto where = GetParam() == "tcp" ? std::string{"tcp://127.0.0.1:0"}
                                   : GetParam() + "://" + dir.path() + "/w.sock";
  test::child workers{{RELAY_SUPERVISED_PIPELINE, "--serve", where, "--cookie-file", cookie}};
  auto line = workers.read_line();
  ASSERT_TRUE(line);
  auto workers_uri = line->substr(std::string{"listening on "}.size());
  test::child run{{RELAY_SUPERVISED_PIPELINE, "--workers-on", workers_uri,
                   "--cookie-file", cookie, "--jobs", "2000", "--crash-rate", "0.01"}};
  std::string last;
  while (auto l = run.read_line(60s))
    last = *l;
  EXPECT_NE(last.find("\"done\":2000"), std::string::npos) << last;
  EXPECT_NE(last.find("\"failed\":0"), std::string::npos) << last;
  EXPECT_NE(last.find("\"duplicates\":0"), std::string::npos) << last;
  EXPECT_EQ(run.stop(0, 30s), 0);
}

INSTANTIATE_TEST_SUITE_P(over, supervision, ::testing::Values("uds", "tcp", "shm"),
                         [](const auto& info) { return info.param; });

} // namespace
} // namespace relay
