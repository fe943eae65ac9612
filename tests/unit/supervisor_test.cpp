// Supervisors under CAF's deterministic test_coordinator: each behaviour of
// OTP's supervisor.erl (and supervisor_SUITE.erl's cases), step by step,
// with the actor clock driven by hand.

#include "relay/supervisor.hpp"

#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "relay/error.hpp"
#include "test_coordinator.hpp"

using namespace std::chrono_literals;

namespace relay {
namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using throw_atom = caf::atom_constant<caf::atom("throw")>;

const caf::error crash_reason = caf::make_error(caf::sec::runtime_error, "boom");

class supervisor_test : public ::testing::Test {
protected:
  /// A worker that logs its start and end, quits with the reason it is sent
  /// (crash_atom), throws on throw_atom, and optionally ignores shutdown.
  child_spec worker(const std::string& id,
                    restart_type restart = restart_type::permanent) {
    child_spec cs;
    cs.id = id;
    cs.restart = restart;
    cs.start = [this, id](caf::actor_system& sys) -> caf::expected<caf::actor> {
      ++starts[id];
      if (failing_starts[id] > 0) {
        --failing_starts[id];
        return caf::make_error(caf::sec::runtime_error, "cannot start " + id);
      }
      if (ignoring[id])
        return caf::actor{};
      events.push_back("start " + id);
      bool stubborn = stubborn_ids[id];
      return sys.spawn([this, id, stubborn](caf::event_based_actor* self) {
        name_exceptions(self);
        self->attach_functor([this, id] { events.push_back("stop " + id); });
        if (stubborn)
          self->set_exit_handler([](caf::exit_msg&) {});
        return caf::behavior{
          [self](crash_atom, caf::error& reason) { self->quit(std::move(reason)); },
          [](throw_atom) { throw std::runtime_error("handler failed"); },
        };
      });
    };
    return cs;
  }

  caf::expected<supervisor_actor> spawn(supervisor_spec spec,
                                        std::vector<child_spec> children) {
    spec.name = spec.name.empty() ? "sup" : spec.name;
    auto sup = spawn_supervisor(sys, std::move(spec), std::move(children));
    if (sup) {
      spawned_sups.push_back(caf::actor_cast<caf::actor>(*sup));
      client->monitor(*sup);
      client->send(*sup, subscribe_reports_atom::value,
                   caf::actor_cast<caf::actor>(reports_sink));
    }
    sched.run();
    return sup;
  }

  /// Sends `xs` to `sup` as a request and returns the answer.
  template <class T, class... Ts>
  caf::expected<T> call(const supervisor_actor& sup, Ts&&... xs) {
    auto dest = caf::actor_cast<caf::actor>(sup);
    auto handle = client->request(dest, caf::infinite, std::forward<Ts>(xs)...);
    sched.run();
    caf::expected<T> result = caf::make_error(caf::sec::request_timeout);
    handle.receive([&](T& x) { result = std::move(x); },
                   [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  std::vector<child_info> children(const supervisor_actor& sup) {
    auto xs = call<std::vector<child_info>>(sup, which_children_atom::value);
    EXPECT_TRUE(xs) << describe(xs.error());
    return xs ? *xs : std::vector<child_info>{};
  }

  caf::actor child(const supervisor_actor& sup, const std::string& id) {
    for (auto& c : children(sup))
      if (c.id == id)
        return c.handle;
    return nullptr;
  }

  /// Ends child `id` with `reason` and runs the supervisor's reaction.
  void end_child(const supervisor_actor& sup, const std::string& id,
                 caf::error reason) {
    auto c = child(sup, id);
    ASSERT_TRUE(c) << id << " is not running";
    caf::anon_send(c, crash_atom::value, std::move(reason));
    sched.run();
  }

  /// The supervisor's exit reason if it terminated, else nullopt.
  std::optional<caf::error> exit_of(const supervisor_actor& sup) {
    std::optional<caf::error> result;
    bool empty = false;
    sched.run();
    client->receive_while([&] { return !result && !empty; })(
      [&](caf::down_msg& dm) {
        if (dm.source == sup.address())
          result = dm.reason;
      },
      caf::after(std::chrono::seconds{0}) >> [&] { empty = true; });
    return result;
  }

  std::vector<supervisor_report::kind> report_kinds() const {
    std::vector<supervisor_report::kind> result;
    for (auto& r : *reports)
      result.push_back(r.what);
    return result;
  }

  size_t count_reports(supervisor_report::kind k) const {
    size_t n = 0;
    for (auto& r : *reports)
      n += r.what == k ? 1 : 0;
    return n;
  }

  void TearDown() override {
    sched.clock().cancel_all();
    for (auto& x : spawned_sups)
      caf::anon_send_exit(x, caf::exit_reason::kill);
    caf::anon_send_exit(reports_sink, caf::exit_reason::kill);
    sched.run();
  }

  caf::actor_system_config cfg;
  caf::actor_system sys{test::testing_config(cfg)};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  caf::scoped_actor client{sys};
  std::map<std::string, int> starts;
  std::map<std::string, int> failing_starts;
  std::map<std::string, bool> ignoring;
  std::map<std::string, bool> stubborn_ids;
  std::vector<std::string> events;
  std::shared_ptr<std::vector<supervisor_report>> reports
    = std::make_shared<std::vector<supervisor_report>>();
  caf::actor reports_sink = sys.spawn([r = reports](caf::event_based_actor*) {
    return caf::behavior{[r](supervisor_report& x) { r->push_back(std::move(x)); }};
  });
  std::vector<caf::actor> spawned_sups;
};

supervisor_spec flags(restart_strategy strategy, uint32_t intensity = 3,
                      caf::timespan period = 5s) {
  supervisor_spec result;
  result.strategy = strategy;
  result.intensity = intensity;
  result.period = period;
  return result;
}

using strings = std::vector<std::string>;

// -- start and stop order -------------------------------------------------------------

TEST_F(supervisor_test, starts_in_order_and_stops_in_reverse_order) {
  auto sup = spawn(flags(restart_strategy::one_for_one),
                   {worker("a"), worker("b"), worker("c")});
  ASSERT_TRUE(sup);
  EXPECT_EQ(events, (strings{"start a", "start b", "start c"}));
  caf::anon_send_exit(*sup, caf::exit_reason::user_shutdown);
  auto reason = exit_of(*sup);
  ASSERT_TRUE(reason);
  EXPECT_EQ(*reason, caf::make_error(caf::exit_reason::user_shutdown));
  EXPECT_EQ(events, (strings{"start a", "start b", "start c", "stop c",
                             "stop b", "stop a"}));
}

// -- strategies -----------------------------------------------------------------------------

struct strategy_case {
  restart_strategy strategy;
  std::string crashed;
  strings restarted; // in start order
};

class strategy_test : public supervisor_test,
                      public ::testing::WithParamInterface<strategy_case> {};

TEST_P(strategy_test, restarts_the_children_the_strategy_names) {
  auto& param = GetParam();
  auto sup = spawn(flags(param.strategy), {worker("a"), worker("b"), worker("c")});
  ASSERT_TRUE(sup);
  events.clear();
  end_child(*sup, param.crashed, crash_reason);
  // The others the strategy names stop in reverse order, then all start in
  // order.
  strings expected{"stop " + param.crashed};
  for (auto i = param.restarted.rbegin(); i != param.restarted.rend(); ++i)
    if (*i != param.crashed)
      expected.push_back("stop " + *i);
  for (auto& id : param.restarted)
    expected.push_back("start " + id);
  EXPECT_EQ(events, expected);
  for (auto& id : {"a", "b", "c"}) {
    bool again = std::find(param.restarted.begin(), param.restarted.end(), id)
                 != param.restarted.end();
    EXPECT_EQ(starts[id], again ? 2 : 1) << id;
  }
  EXPECT_FALSE(exit_of(*sup));
}

INSTANTIATE_TEST_SUITE_P(
  all, strategy_test,
  ::testing::Values(
    strategy_case{restart_strategy::one_for_one, "a", {"a"}},
    strategy_case{restart_strategy::one_for_one, "b", {"b"}},
    strategy_case{restart_strategy::one_for_one, "c", {"c"}},
    strategy_case{restart_strategy::one_for_all, "a", {"a", "b", "c"}},
    strategy_case{restart_strategy::one_for_all, "b", {"a", "b", "c"}},
    strategy_case{restart_strategy::one_for_all, "c", {"a", "b", "c"}},
    strategy_case{restart_strategy::rest_for_one, "a", {"a", "b", "c"}},
    strategy_case{restart_strategy::rest_for_one, "b", {"b", "c"}},
    strategy_case{restart_strategy::rest_for_one, "c", {"c"}}));

TEST_F(supervisor_test, a_group_restart_removes_temporary_children) {
  // OTP's temporary_bystander: a temporary sibling is stopped, not restarted.
  auto sup = spawn(flags(restart_strategy::one_for_all),
                   {worker("a"), worker("t", restart_type::temporary)});
  ASSERT_TRUE(sup);
  end_child(*sup, "a", crash_reason);
  auto xs = children(*sup);
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].id, "a");
  EXPECT_EQ(starts["t"], 1);
}

// -- restart types ------------------------------------------------------------------------

struct restart_case {
  restart_type type;
  int exit; // 0 normal, 1 shutdown, 2 crash, 3 kill
  bool restarted;
  bool spec_kept;
};

class restart_type_test : public supervisor_test,
                          public ::testing::WithParamInterface<restart_case> {};

TEST_P(restart_type_test, follows_otp) {
  auto& param = GetParam();
  auto sup = spawn(flags(restart_strategy::one_for_one), {worker("w", param.type)});
  ASSERT_TRUE(sup);
  auto c = child(*sup, "w");
  switch (param.exit) {
    case 0: caf::anon_send(c, crash_atom::value, caf::error{}); break;
    case 1:
      caf::anon_send(c, crash_atom::value,
                     caf::make_error(caf::exit_reason::user_shutdown));
      break;
    case 2: caf::anon_send(c, crash_atom::value, crash_reason); break;
    case 3: caf::anon_send_exit(c, caf::exit_reason::kill); break;
  }
  sched.run();
  EXPECT_EQ(starts["w"], param.restarted ? 2 : 1);
  auto xs = children(*sup);
  EXPECT_EQ(xs.size(), param.spec_kept ? 1u : 0u);
  // A report for every crash, and for any end of a permanent child.
  bool reported = param.type == restart_type::permanent || param.exit >= 2;
  EXPECT_EQ(count_reports(supervisor_report::kind::child_terminated),
            reported ? 1u : 0u);
  EXPECT_FALSE(exit_of(*sup));
}

INSTANTIATE_TEST_SUITE_P(
  all, restart_type_test,
  ::testing::Values(restart_case{restart_type::permanent, 0, true, true},
                    restart_case{restart_type::permanent, 1, true, true},
                    restart_case{restart_type::permanent, 2, true, true},
                    restart_case{restart_type::permanent, 3, true, true},
                    restart_case{restart_type::transient, 0, false, true},
                    restart_case{restart_type::transient, 1, false, true},
                    restart_case{restart_type::transient, 2, true, true},
                    restart_case{restart_type::transient, 3, true, true},
                    restart_case{restart_type::temporary, 0, false, false},
                    restart_case{restart_type::temporary, 1, false, false},
                    restart_case{restart_type::temporary, 2, false, false},
                    restart_case{restart_type::temporary, 3, false, false}));

TEST_F(supervisor_test, a_throwing_handler_is_a_crash_that_names_the_exception) {
  auto sup = spawn(flags(restart_strategy::one_for_one), {worker("w")});
  ASSERT_TRUE(sup);
  caf::anon_send(child(*sup, "w"), throw_atom::value);
  sched.run();
  EXPECT_EQ(starts["w"], 2);
  ASSERT_EQ(count_reports(supervisor_report::kind::child_terminated), 1u);
  for (auto& r : *reports) {
    if (r.what == supervisor_report::kind::child_terminated) {
      EXPECT_NE(describe(r.reason).find("std::runtime_error: handler failed"),
                std::string::npos)
        << describe(r.reason);
    }
  }
}

// -- restart intensity ------------------------------------------------------------------

TEST_F(supervisor_test, intensity_allows_exactly_intensity_restarts_per_period) {
  auto sup = spawn(flags(restart_strategy::one_for_one, 2, 5s), {worker("w")});
  ASSERT_TRUE(sup);
  end_child(*sup, "w", crash_reason); // restart 1 at t = 0
  sched.clock().advance_time(5s);
  end_child(*sup, "w", crash_reason); // restart 2 at t = 5 s: 1 still counts
  EXPECT_FALSE(exit_of(*sup));
  EXPECT_EQ(starts["w"], 3);
  // t = 5 s: the restart at 0 is exactly `period` old and still counts
  // (OTP keeps T >= Now - Period): a third one is one too many.
  end_child(*sup, "w", crash_reason);
  auto reason = exit_of(*sup);
  ASSERT_TRUE(reason);
  EXPECT_EQ(*reason, caf::make_error(caf::exit_reason::user_shutdown));
  EXPECT_EQ(count_reports(supervisor_report::kind::reached_max_restart_intensity), 1u);
}

TEST_F(supervisor_test, restarts_older_than_the_period_no_longer_count) {
  auto sup = spawn(flags(restart_strategy::one_for_one, 2, 5s), {worker("w")});
  ASSERT_TRUE(sup);
  end_child(*sup, "w", crash_reason); // t = 0
  end_child(*sup, "w", crash_reason); // t = 0
  sched.clock().advance_time(5s + 1ns);
  end_child(*sup, "w", crash_reason); // both earlier ones are out of the window
  EXPECT_FALSE(exit_of(*sup));
  EXPECT_EQ(starts["w"], 4);
}

TEST_F(supervisor_test, intensity_zero_gives_up_at_the_first_restart) {
  auto sup = spawn(flags(restart_strategy::one_for_one, 0), {worker("a"), worker("b")});
  ASSERT_TRUE(sup);
  events.clear();
  end_child(*sup, "b", crash_reason);
  ASSERT_TRUE(exit_of(*sup));
  EXPECT_EQ(events, (strings{"stop b", "stop a"}));
}

TEST_F(supervisor_test, a_group_restart_counts_once) {
  auto sup = spawn(flags(restart_strategy::one_for_all, 1),
                   {worker("a"), worker("b"), worker("c")});
  ASSERT_TRUE(sup);
  end_child(*sup, "b", crash_reason); // one restart, three children started
  EXPECT_FALSE(exit_of(*sup));
  end_child(*sup, "c", crash_reason);
  EXPECT_TRUE(exit_of(*sup));
}

TEST_F(supervisor_test, escalates_through_two_levels) {
  auto inner_flags = flags(restart_strategy::one_for_one, 0);
  inner_flags.name = "inner";
  auto outer_flags = flags(restart_strategy::one_for_one, 0);
  outer_flags.name = "outer";
  auto sup = spawn(outer_flags, {worker("sibling"),
                                 supervisor_child("inner", inner_flags,
                                                  {worker("leaf")})});
  ASSERT_TRUE(sup);
  EXPECT_EQ(events, (strings{"start sibling", "start leaf"}));
  auto inner = caf::actor_cast<supervisor_actor>(child(*sup, "inner"));
  ASSERT_TRUE(inner);
  events.clear();
  end_child(inner, "leaf", crash_reason);
  // The inner supervisor gives up (shutdown); the outer sees its child end,
  // counts a restart, which exceeds its own intensity: it stops too.
  auto reason = exit_of(*sup);
  ASSERT_TRUE(reason);
  EXPECT_EQ(*reason, caf::make_error(caf::exit_reason::user_shutdown));
  EXPECT_EQ(events, (strings{"stop leaf", "stop sibling"}));
}

// -- shutdown ------------------------------------------------------------------------------

TEST_F(supervisor_test, a_shutdown_timeout_kills_a_child_that_ignores_shutdown) {
  stubborn_ids["s"] = true;
  auto spec = worker("s");
  spec.shutdown = shutdown_policy::after(2s);
  auto sup = spawn(flags(restart_strategy::one_for_one), {worker("a"), spec});
  ASSERT_TRUE(sup);
  events.clear();
  caf::anon_send_exit(*sup, caf::exit_reason::user_shutdown);
  sched.run();
  EXPECT_TRUE(events.empty()) << "s still runs, a waits for it";
  sched.clock().advance_time(1999ms);
  sched.run();
  EXPECT_TRUE(events.empty());
  sched.clock().advance_time(1ms);
  sched.run();
  EXPECT_EQ(events, (strings{"stop s", "stop a"}));
  EXPECT_TRUE(exit_of(*sup));
  EXPECT_EQ(count_reports(supervisor_report::kind::shutdown_error), 1u);
}

TEST_F(supervisor_test, brutal_kill_does_not_wait) {
  stubborn_ids["s"] = true;
  auto spec = worker("s");
  spec.shutdown = shutdown_policy::brutal_kill();
  auto sup = spawn(flags(restart_strategy::one_for_one), {spec});
  ASSERT_TRUE(sup);
  caf::anon_send_exit(*sup, caf::exit_reason::user_shutdown);
  EXPECT_TRUE(exit_of(*sup));
  EXPECT_EQ(count_reports(supervisor_report::kind::shutdown_error), 0u);
}

TEST_F(supervisor_test, infinity_waits_as_long_as_it_takes) {
  stubborn_ids["s"] = true;
  auto spec = worker("s");
  spec.shutdown = shutdown_policy::infinity();
  auto sup = spawn(flags(restart_strategy::one_for_one), {spec});
  ASSERT_TRUE(sup);
  auto s = child(*sup, "s");
  caf::anon_send_exit(*sup, caf::exit_reason::user_shutdown);
  sched.run();
  EXPECT_EQ(sched.clock().schedule().size(), 0u) << "infinity arms no timer";
  sched.clock().advance_time(1h);
  EXPECT_FALSE(exit_of(*sup));
  caf::anon_send(s, crash_atom::value, caf::make_error(caf::exit_reason::user_shutdown));
  EXPECT_TRUE(exit_of(*sup));
}

TEST_F(supervisor_test, children_stopped_by_the_supervisor_are_not_crashes) {
  auto sup = spawn(flags(restart_strategy::one_for_all, 1), {worker("a"), worker("b")});
  ASSERT_TRUE(sup);
  end_child(*sup, "a", crash_reason); // b is stopped by the supervisor
  EXPECT_EQ(count_reports(supervisor_report::kind::child_terminated), 1u);
  EXPECT_FALSE(exit_of(*sup));
}

TEST_F(supervisor_test, no_child_outlives_a_killed_supervisor) {
  auto sup = spawn(flags(restart_strategy::one_for_one), {worker("a")});
  ASSERT_TRUE(sup);
  events.clear();
  caf::anon_send_exit(*sup, caf::exit_reason::kill);
  sched.run();
  EXPECT_EQ(events, (strings{"stop a"}));
}

TEST_F(supervisor_test, an_exit_queued_behind_terminate_child_is_dropped) {
  // OTP flushes the EXIT of a child it terminates (unlink_flush).
  stubborn_ids["s"] = true;
  auto slow = worker("s");
  slow.shutdown = shutdown_policy::after(1s);
  auto sup = spawn(flags(restart_strategy::one_for_one), {worker("a"), slow});
  ASSERT_TRUE(sup);
  auto a = child(*sup, "a");
  auto dest = caf::actor_cast<caf::actor>(*sup);
  // The supervisor is busy stopping s (it ignores shutdown for 1 s) ...
  client->send(dest, terminate_child_atom::value, std::string{"s"});
  sched.run();
  // ... when terminate_child(a) arrives and a crashes.
  client->send(dest, terminate_child_atom::value, std::string{"a"});
  caf::anon_send(a, crash_atom::value, crash_reason);
  sched.run();
  sched.clock().advance_time(1s);
  sched.run();
  EXPECT_EQ(starts["a"], 1) << "a was terminated, not restarted";
  EXPECT_EQ(count_reports(supervisor_report::kind::child_terminated), 0u);
  for (auto& c : children(*sup))
    EXPECT_EQ(c.state, child_info::status::undefined) << c.id;
}

TEST_F(supervisor_test, a_child_whose_exit_waits_its_turn_counts_as_running) {
  stubborn_ids["s"] = true;
  auto slow = worker("s");
  slow.shutdown = shutdown_policy::after(1s);
  auto sup = spawn(flags(restart_strategy::one_for_one), {worker("a"), slow});
  ASSERT_TRUE(sup);
  auto a = child(*sup, "a");
  auto dest = caf::actor_cast<caf::actor>(*sup);
  client->send(dest, terminate_child_atom::value, std::string{"s"});
  sched.run();
  caf::anon_send(a, crash_atom::value, crash_reason);
  sched.run(); // a is gone; its exit waits behind the stop of s
  auto restart = client->request(dest, caf::infinite, restart_child_atom::value,
                                 std::string{"a"});
  sched.run();
  sched.clock().advance_time(1s);
  sched.run();
  caf::error answer;
  restart.receive([](caf::actor&) {}, [&](caf::error& err) { answer = err; });
  EXPECT_TRUE(is(answer, supervisor_errc::running)) << describe(answer);
  EXPECT_EQ(starts["a"], 2) << "the crash is then handled: one restart";
  EXPECT_EQ(count_reports(supervisor_report::kind::child_terminated), 1u);
}

TEST_F(supervisor_test, a_nested_supervisor_killed_during_its_start_fails_the_parent) {
  caf::actor nested;
  child_spec hanging;
  hanging.id = "hang";
  hanging.start = child_start::async(
    [&](caf::event_based_actor* self, const caf::message&, child_start::reply) {
      nested = caf::actor_cast<caf::actor>(self); // never answers
    });
  auto sup = spawn(flags(restart_strategy::one_for_one),
                   {supervisor_child("inner", flags(restart_strategy::one_for_one),
                                     {hanging})});
  ASSERT_TRUE(sup);
  ASSERT_TRUE(nested);
  EXPECT_FALSE(exit_of(*sup)) << "the parent waits for the nested start";
  caf::anon_send_exit(nested, caf::exit_reason::kill);
  auto reason = exit_of(*sup);
  ASSERT_TRUE(reason);
  EXPECT_TRUE(is(*reason, supervisor_errc::failed_to_start_child)) << describe(*reason);
}

TEST_F(supervisor_test, a_throwing_start_is_a_start_failure_naming_the_exception) {
  child_spec thrower;
  thrower.id = "t";
  thrower.start = [](caf::actor_system&) -> caf::expected<caf::actor> {
    throw std::logic_error("no config");
  };
  child_spec async_thrower;
  async_thrower.id = "u";
  async_thrower.start = child_start::async(
    [](caf::event_based_actor*, const caf::message&, child_start::reply) {
      throw std::logic_error("async no config");
    });
  auto sup = spawn(flags(restart_strategy::one_for_one), {worker("a")});
  ASSERT_TRUE(sup);
  for (auto* spec : {&thrower, &async_thrower}) {
    auto res = call<caf::actor>(*sup, start_child_atom::value, *spec);
    ASSERT_FALSE(res);
    EXPECT_TRUE(is(res.error(), supervisor_errc::start_failed));
    EXPECT_NE(describe(res.error()).find("std::logic_error"), std::string::npos)
      << describe(res.error());
  }
  EXPECT_FALSE(exit_of(*sup));
}

// -- start failures -----------------------------------------------------------------------

TEST_F(supervisor_test, a_failed_start_at_init_stops_the_started_and_fails) {
  failing_starts["b"] = 1;
  auto sup = spawn(flags(restart_strategy::one_for_one),
                   {worker("a"), worker("b"), worker("c")});
  ASSERT_TRUE(sup);
  auto reason = exit_of(*sup);
  ASSERT_TRUE(reason);
  EXPECT_TRUE(is(*reason, supervisor_errc::failed_to_start_child)) << describe(*reason);
  EXPECT_NE(describe(*reason).find("'b'"), std::string::npos) << describe(*reason);
  EXPECT_NE(describe(*reason).find("cannot start b"), std::string::npos);
  EXPECT_EQ(events, (strings{"start a", "stop a"}));
  EXPECT_EQ(starts["c"], 0);
}

TEST_F(supervisor_test, a_nested_supervisor_that_fails_to_start_fails_its_parent) {
  failing_starts["leaf"] = 1;
  auto sup = spawn(flags(restart_strategy::one_for_one),
                   {worker("a"), supervisor_child("inner", flags(restart_strategy::one_for_one),
                                                  {worker("leaf")})});
  ASSERT_TRUE(sup);
  auto reason = exit_of(*sup);
  ASSERT_TRUE(reason);
  EXPECT_TRUE(is(*reason, supervisor_errc::failed_to_start_child)) << describe(*reason);
  EXPECT_NE(describe(*reason).find("'inner'"), std::string::npos) << describe(*reason);
}

TEST_F(supervisor_test, wait_started_reports_the_start_failure) {
  failing_starts["a"] = 1;
  auto sup = spawn_supervisor(sys, flags(restart_strategy::one_for_one), {worker("a")});
  ASSERT_TRUE(sup);
  auto res = call<ok_atom>(*sup, wait_started_atom::value);
  ASSERT_FALSE(res);
  EXPECT_TRUE(is(res.error(), supervisor_errc::failed_to_start_child))
    << describe(res.error());
}

TEST_F(supervisor_test, a_failing_restart_is_retried_and_each_attempt_counts) {
  auto sup = spawn(flags(restart_strategy::one_for_one, 3), {worker("w")});
  ASSERT_TRUE(sup);
  failing_starts["w"] = 2;
  end_child(*sup, "w", crash_reason);
  // Restart 1 fails, retry (restart 2) fails, retry (restart 3) works.
  EXPECT_EQ(starts["w"], 4);
  EXPECT_EQ(count_reports(supervisor_report::kind::start_error), 2u);
  EXPECT_FALSE(exit_of(*sup));
  end_child(*sup, "w", crash_reason); // restart 4 exceeds 3 within 5 s
  EXPECT_TRUE(exit_of(*sup));
  EXPECT_EQ(starts["w"], 4) << "no start after giving up";
}

TEST_F(supervisor_test, rest_for_one_retry_restarts_from_the_failed_child) {
  // OTP's rest_for_one_other_child_fails_restart.
  auto sup = spawn(flags(restart_strategy::rest_for_one, 5),
                   {worker("a"), worker("b"), worker("c")});
  ASSERT_TRUE(sup);
  failing_starts["b"] = 1;
  end_child(*sup, "a", crash_reason);
  // a restarts, b fails, c stays down; the retry restarts b and c, not a.
  EXPECT_EQ(starts["a"], 2);
  EXPECT_EQ(starts["b"], 3);
  EXPECT_EQ(starts["c"], 2);
  for (auto& c : children(*sup))
    EXPECT_EQ(c.state, child_info::status::running) << c.id;
}

TEST_F(supervisor_test, ignore_keeps_the_spec_without_a_child) {
  // OTP's sup_start_ignore_child and sup_start_ignore_temporary_child.
  ignoring["i"] = true;
  ignoring["t"] = true;
  auto sup = spawn(flags(restart_strategy::one_for_one),
                   {worker("i"), worker("t", restart_type::temporary)});
  ASSERT_TRUE(sup);
  auto xs = children(*sup);
  ASSERT_EQ(xs.size(), 1u) << "an ignored temporary child is not kept";
  EXPECT_EQ(xs[0].id, "i");
  EXPECT_EQ(xs[0].state, child_info::status::undefined);
  EXPECT_FALSE(xs[0].handle);
}

// -- dynamic children ------------------------------------------------------------------------

TEST_F(supervisor_test, simple_one_for_one_starts_with_arguments_and_restarts_them) {
  child_spec tmpl;
  tmpl.start = [this](caf::actor_system& sys, const caf::message& args) {
    events.push_back("start " + caf::to_string(args));
    return sys.spawn([](caf::event_based_actor* self) {
      return caf::behavior{
        [self](crash_atom, caf::error& reason) { self->quit(std::move(reason)); }};
    });
  };
  auto sup = spawn(flags(restart_strategy::simple_one_for_one), {tmpl});
  ASSERT_TRUE(sup);
  auto a = call<caf::actor>(*sup, start_child_atom::value, caf::make_message(1));
  auto b = call<caf::actor>(*sup, start_child_atom::value, caf::make_message(2));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(events, (strings{"start (1)", "start (2)"}));
  caf::anon_send(*b, crash_atom::value, crash_reason);
  sched.run();
  EXPECT_EQ(events, (strings{"start (1)", "start (2)", "start (2)"}))
    << "restarted with the same arguments";
  EXPECT_EQ(call<child_counts>(*sup, count_children_atom::value)->active, 2u);
  ASSERT_TRUE(call<ok_atom>(*sup, terminate_child_atom::value, *a));
  EXPECT_EQ(children(*sup).size(), 1u);
  auto err = call<ok_atom>(*sup, terminate_child_atom::value, std::string{"x"});
  EXPECT_TRUE(is(err.error(), supervisor_errc::simple_one_for_one));
}

TEST_F(supervisor_test, simple_one_for_one_stops_all_children_at_once_under_one_timer) {
  child_spec tmpl;
  tmpl.shutdown = shutdown_policy::after(1s);
  int stopped = 0;
  tmpl.start = [&](caf::actor_system& sys) {
    return sys.spawn([&](caf::event_based_actor* self) {
      self->set_exit_handler([](caf::exit_msg&) {}); // ignores shutdown
      self->attach_functor([&] { ++stopped; });
      return caf::behavior{[](int) {}};
    });
  };
  auto sup = spawn(flags(restart_strategy::simple_one_for_one), {tmpl});
  ASSERT_TRUE(sup);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(call<caf::actor>(*sup, start_child_atom::value, caf::message{}));
  caf::anon_send_exit(*sup, caf::exit_reason::user_shutdown);
  sched.run();
  EXPECT_EQ(stopped, 0);
  sched.clock().advance_time(1s); // one timer for all three
  sched.run();
  EXPECT_EQ(stopped, 3);
  EXPECT_TRUE(exit_of(*sup));
}

// -- restart delay (back-off) ----------------------------------------------------------------

TEST_F(supervisor_test, restart_delay_grows_on_the_actor_clock) {
  auto spec = worker("w");
  spec.restart_delay.min_delay = 100ms;
  spec.restart_delay.max_delay = 1s;
  spec.restart_delay.random_factor = 0;
  auto sup = spawn(flags(restart_strategy::one_for_one, 10, 60s), {spec});
  ASSERT_TRUE(sup);
  end_child(*sup, "w", crash_reason);
  EXPECT_EQ(starts["w"], 1);
  EXPECT_EQ(children(*sup)[0].state, child_info::status::restarting);
  sched.clock().advance_time(99ms);
  sched.run();
  EXPECT_EQ(starts["w"], 1);
  sched.clock().advance_time(1ms);
  sched.run();
  EXPECT_EQ(starts["w"], 2);
  end_child(*sup, "w", crash_reason); // second attempt: 200 ms
  sched.clock().advance_time(199ms);
  sched.run();
  EXPECT_EQ(starts["w"], 2);
  sched.clock().advance_time(1ms);
  sched.run();
  EXPECT_EQ(starts["w"], 3);
}

// -- management calls ------------------------------------------------------------------------

TEST_F(supervisor_test, management_calls_answer_as_otp_in_every_state) {
  auto sup = spawn(flags(restart_strategy::one_for_one), {worker("a")});
  ASSERT_TRUE(sup);
  auto err_of = [](auto&& x) { return x ? caf::error{} : x.error(); };
  // running
  EXPECT_TRUE(is(err_of(call<caf::actor>(*sup, start_child_atom::value, worker("a"))),
                 supervisor_errc::already_started));
  EXPECT_TRUE(is(err_of(call<caf::actor>(*sup, restart_child_atom::value, std::string{"a"})),
                 supervisor_errc::running));
  EXPECT_TRUE(is(err_of(call<ok_atom>(*sup, delete_child_atom::value, std::string{"a"})),
                 supervisor_errc::running));
  // not found
  for (auto atom : {0, 1, 2}) {
    caf::error err;
    if (atom == 0)
      err = err_of(call<ok_atom>(*sup, terminate_child_atom::value, std::string{"x"}));
    else if (atom == 1)
      err = err_of(call<caf::actor>(*sup, restart_child_atom::value, std::string{"x"}));
    else
      err = err_of(call<ok_atom>(*sup, delete_child_atom::value, std::string{"x"}));
    EXPECT_TRUE(is(err, supervisor_errc::not_found)) << describe(err);
  }
  // terminated: the spec stays, not running; a manual restart does not count
  ASSERT_TRUE(call<ok_atom>(*sup, terminate_child_atom::value, std::string{"a"}));
  EXPECT_EQ(children(*sup)[0].state, child_info::status::undefined);
  EXPECT_TRUE(call<ok_atom>(*sup, terminate_child_atom::value, std::string{"a"}))
    << "terminating a stopped child is ok";
  EXPECT_TRUE(is(err_of(call<caf::actor>(*sup, start_child_atom::value, worker("a"))),
                 supervisor_errc::already_present));
  auto again = call<caf::actor>(*sup, restart_child_atom::value, std::string{"a"});
  ASSERT_TRUE(again && *again);
  EXPECT_EQ(call<child_counts>(*sup, count_children_atom::value)->active, 1u);
  ASSERT_TRUE(call<ok_atom>(*sup, terminate_child_atom::value, std::string{"a"}));
  ASSERT_TRUE(call<ok_atom>(*sup, delete_child_atom::value, std::string{"a"}));
  EXPECT_TRUE(children(*sup).empty());
  // start_child adds a new child at the end; its start failure adds nothing
  ASSERT_TRUE(call<caf::actor>(*sup, start_child_atom::value, worker("b")));
  failing_starts["c"] = 1;
  EXPECT_TRUE(is(err_of(call<caf::actor>(*sup, start_child_atom::value, worker("c"))),
                 supervisor_errc::start_failed));
  EXPECT_EQ(children(*sup).size(), 1u);
  // restarting (a restart delay pending)
  auto slow = worker("slow");
  slow.restart_delay.min_delay = 1s;
  slow.restart_delay.max_delay = 1s;
  ASSERT_TRUE(call<caf::actor>(*sup, start_child_atom::value, slow));
  end_child(*sup, "slow", crash_reason);
  EXPECT_TRUE(is(err_of(call<caf::actor>(*sup, restart_child_atom::value, std::string{"slow"})),
                 supervisor_errc::restarting));
  EXPECT_TRUE(is(err_of(call<ok_atom>(*sup, delete_child_atom::value, std::string{"slow"})),
                 supervisor_errc::restarting));
  // terminate_child cancels the pending restart
  ASSERT_TRUE(call<ok_atom>(*sup, terminate_child_atom::value, std::string{"slow"}));
  sched.clock().advance_time(2s);
  sched.run();
  EXPECT_EQ(starts["slow"], 1);
  auto counts = call<child_counts>(*sup, count_children_atom::value);
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->specs, 2u);
  EXPECT_EQ(counts->active, 1u);
  EXPECT_EQ(counts->workers, 2u);
  EXPECT_TRUE(is(err_of(call<caf::actor>(*sup, start_child_atom::value, caf::message{})),
                 supervisor_errc::simple_one_for_one));
}

TEST_F(supervisor_test, invalid_specs_are_refused_before_spawning) {
  auto sig = worker("s", restart_type::permanent);
  sig.significant = true;
  auto sup = spawn_supervisor(sys, flags(restart_strategy::one_for_one), {sig});
  ASSERT_FALSE(sup);
  EXPECT_TRUE(is(sup.error(), supervisor_errc::invalid_child_spec));
  auto dup = spawn_supervisor(sys, flags(restart_strategy::one_for_one),
                              {worker("a"), worker("a")});
  ASSERT_FALSE(dup);
  EXPECT_NE(describe(dup.error()).find("supervisor.invalid_child_spec"),
            std::string::npos) << describe(dup.error());
  auto simple = spawn_supervisor(sys, flags(restart_strategy::simple_one_for_one), {});
  EXPECT_TRUE(is(simple.error(), supervisor_errc::invalid_supervisor_spec));
}

// -- auto_shutdown ----------------------------------------------------------------------------

TEST_F(supervisor_test, any_significant_child_ending_stops_the_supervisor) {
  auto spec = flags(restart_strategy::one_for_one);
  spec.auto_shutdown = auto_shutdown::any_significant;
  auto sig = worker("s", restart_type::transient);
  sig.significant = true;
  auto sup = spawn(spec, {worker("a"), sig});
  ASSERT_TRUE(sup);
  end_child(*sup, "s", caf::error{}); // clean exit: not restarted, significant
  auto reason = exit_of(*sup);
  ASSERT_TRUE(reason);
  EXPECT_EQ(*reason, caf::make_error(caf::exit_reason::user_shutdown));
}

TEST_F(supervisor_test, all_significant_waits_for_the_last_significant_child) {
  auto spec = flags(restart_strategy::one_for_one);
  spec.auto_shutdown = auto_shutdown::all_significant;
  auto s1 = worker("s1", restart_type::temporary);
  s1.significant = true;
  auto s2 = worker("s2", restart_type::transient);
  s2.significant = true;
  auto s3 = worker("s3", restart_type::transient);
  s3.significant = true;
  auto sup = spawn(spec, {s1, s2, s3});
  ASSERT_TRUE(sup);
  end_child(*sup, "s1", crash_reason);
  EXPECT_FALSE(exit_of(*sup));
  end_child(*sup, "s2", caf::error{});
  EXPECT_FALSE(exit_of(*sup)) << "s3 still runs";
  // terminate_child of the last significant child does not trigger it.
  ASSERT_TRUE(call<ok_atom>(*sup, terminate_child_atom::value, std::string{"s3"}));
  EXPECT_FALSE(exit_of(*sup));
  // Restarted by hand, then ending by itself, it does.
  ASSERT_TRUE(call<caf::actor>(*sup, restart_child_atom::value, std::string{"s3"}));
  end_child(*sup, "s3", caf::error{});
  EXPECT_TRUE(exit_of(*sup));
}

} // namespace
} // namespace relay
