// supervised_pipeline: a job source, a supervised pool of workers that crash
// at random, and a result sink. Every job is done exactly once or reported
// failed. See README.md.

#include <caf/all.hpp>

#include <CLI/CLI.hpp>

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "messages.hpp"
#include "relay/node.hpp"
#include "relay/supervisor.hpp"

using namespace std::chrono_literals;

namespace pipeline {

using done_atom = caf::atom_constant<caf::atom("done")>;
using failed_atom = caf::atom_constant<caf::atom("failed")>;
using finished_atom = caf::atom_constant<caf::atom("finished")>;

struct options {
  uint64_t jobs = 1000;
  size_t workers = 4;
  double crash_rate = 0.01;
  uint64_t seed = 1;
  uint32_t max_attempts = 10;
  uint32_t max_restarts = 1000;
  std::string workers_on;
  std::string serve;
  std::string cookie_file;
  std::string listen;
};

/// Blocks SIGINT and SIGTERM in every thread (call before the node starts
/// its threads) so that sigwait can take them.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

/// A worker: squares the payload, or crashes (throws) with probability
/// `crash_rate` per job. Registered as "pipeline.worker" so that it can be
/// spawned on another node.
caf::behavior worker(caf::event_based_actor* self, double crash_rate,
                     uint64_t seed) {
  relay::name_exceptions(self);
  auto rng = std::make_shared<std::mt19937_64>(seed ^ (self->id() * 0x9e3779b97f4a7c15ull));
  return {
    [=](const job& j) -> result {
      std::uniform_real_distribution<double> dist{0.0, 1.0};
      if (dist(*rng) < crash_rate)
        throw std::runtime_error("worker crashed on job " + std::to_string(j.id));
      return result{j.id, j.payload * j.payload};
    },
  };
}

/// The sink: counts results and failures, notices duplicates, and tells
/// `main_actor` when every job is accounted for.
struct sink_state {
  static inline const char* name = "pipeline.sink";
  std::set<uint64_t> seen;
  uint64_t done = 0;
  uint64_t failed = 0;
  uint64_t duplicates = 0;
  /// Failed jobs are listed one by one up to this many, then counted.
  static constexpr uint64_t max_listed = 10;
};

caf::behavior sink(caf::stateful_actor<sink_state>* self, uint64_t jobs,
                   caf::actor main_actor) {
  auto check = [=] {
    auto& st = self->state;
    if (st.done + st.failed == jobs)
      self->send(main_actor, finished_atom::value, st.done, st.failed,
                 st.duplicates);
  };
  return {
    [=](done_atom, const result& r) {
      auto& st = self->state;
      if (!st.seen.insert(r.id).second) {
        ++st.duplicates;
        std::cout << "duplicate result for job " << r.id << std::endl;
        return;
      }
      if (r.value != r.id * r.id)
        std::cout << "wrong result for job " << r.id << std::endl;
      ++st.done;
      if (st.done % (jobs / 10 == 0 ? 1 : jobs / 10) == 0)
        std::cout << "progress: " << st.done << " of " << jobs << " done"
                  << std::endl;
      check();
    },
    [=](failed_atom, uint64_t id, const std::string& why) {
      auto& st = self->state;
      if (!st.seen.insert(id).second) {
        ++st.duplicates;
        return;
      }
      ++st.failed;
      if (st.failed <= sink_state::max_listed)
        std::cout << "job " << id << " failed: " << why << std::endl;
      else if (st.failed == sink_state::max_listed + 1)
        std::cout << "(further failed jobs are counted, not listed)" << std::endl;
      check();
    },
  };
}

/// The source: hands each job to a free worker, one job per worker at a
/// time. A job whose worker ends before answering goes back to the queue
/// (at most max_attempts times); the pool's reports bring the restarted
/// workers in.
struct source_state {
  static inline const char* name = "pipeline.source";
  std::deque<job> queue;
  std::map<uint64_t, uint32_t> attempts;
  std::vector<caf::actor> idle;
  /// Job in flight at each busy worker.
  std::map<caf::actor_addr, job> busy;
  std::set<caf::actor_addr> known;
  uint64_t crashes = 0;
  uint64_t restarts = 0;
  /// Hands out queued jobs to idle workers.
  std::function<void()> dispatch;
};

caf::behavior source(caf::stateful_actor<source_state>* self,
                     relay::supervisor_actor pool, caf::actor sink_actor,
                     options opts) {
  auto& st = self->state;
  for (uint64_t i = 1; i <= opts.jobs; ++i)
    st.queue.push_back(job{i, i});
  auto add_worker = [=](const caf::actor& w) {
    auto& st = self->state;
    if (!w || !st.known.insert(w.address()).second)
      return;
    self->monitor(w);
    st.idle.push_back(w);
  };
  auto requeue = [=](const job& j, const std::string& why) {
    auto& st = self->state;
    if (++st.attempts[j.id] >= opts.max_attempts)
      self->send(sink_actor, failed_atom::value, j.id,
                 "gave up after " + std::to_string(opts.max_attempts)
                   + " attempts, last: " + why);
    else
      st.queue.push_front(j);
  };
  st.dispatch = [=] {
    auto& st = self->state;
    while (!st.queue.empty() && !st.idle.empty()) {
      auto w = st.idle.back();
      st.idle.pop_back();
      auto j = st.queue.front();
      st.queue.pop_front();
      st.busy[w.address()] = j;
      self->request(w, caf::infinite, j)
        .then(
          [=](const result& r) {
            auto& st = self->state;
            auto i = st.busy.find(w.address());
            if (i == st.busy.end() || i->second.id != r.id)
              return; // already requeued when the worker went down
            st.busy.erase(i);
            self->send(sink_actor, done_atom::value, r);
            st.idle.push_back(w);
            self->state.dispatch();
          },
          [=](caf::error&) {
            // The DOWN of the worker requeues the job.
          });
    }
  };
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source == pool.address()) {
      std::cout << "the pool gave up: " << relay::describe(dm.reason) << std::endl;
      for (auto& kvp : st.busy)
        self->send(sink_actor, failed_atom::value, kvp.second.id,
                   std::string{"the pool gave up"});
      for (auto& j : st.queue)
        self->send(sink_actor, failed_atom::value, j.id,
                   std::string{"the pool gave up"});
      st.busy.clear();
      st.queue.clear();
      return;
    }
    st.known.erase(dm.source);
    st.idle.erase(std::remove_if(st.idle.begin(), st.idle.end(),
                                 [&](auto& x) { return x.address() == dm.source; }),
                  st.idle.end());
    auto i = st.busy.find(dm.source);
    if (i != st.busy.end()) {
      auto j = i->second;
      st.busy.erase(i);
      requeue(j, relay::describe(dm.reason));
      self->state.dispatch();
    }
  });
  self->monitor(pool);
  self->send(pool, relay::subscribe_reports_atom::value,
             caf::actor_cast<caf::actor>(self));
  self->request(pool, caf::infinite, relay::which_children_atom::value)
    .then([=](std::vector<relay::child_info>& xs) {
      for (auto& x : xs)
        add_worker(x.handle);
      self->state.dispatch();
    });
  return {
    [=](relay::supervisor_report& r) {
      auto& st = self->state;
      using kind = relay::supervisor_report::kind;
      if (r.what == kind::child_terminated) {
        ++st.crashes;
        std::cout << "crash: " << r.child_id << ": " << relay::describe(r.reason)
                  << std::endl;
      } else if (r.what == kind::started && r.restart) {
        ++st.restarts;
        std::cout << "restart: " << r.child_id << " is now actor "
                  << r.child.id() << " on "
                  << (r.child.node() == self->node() ? "this node"
                                                      : "the workers' node")
                  << std::endl;
        add_worker(r.child);
        self->state.dispatch();
      } else if (r.what != kind::started) {
        std::cout << "pool: " << relay::to_string(r) << std::endl;
      }
    },
    [=](finished_atom) {
      auto& st = self->state;
      return caf::make_message(st.crashes, st.restarts);
    },
  };
}

int serve(relay::node_config& cfg, const options& opts) {
  auto signals = block_stop_signals();
  relay::node n{cfg};
  auto uri = n.listen(opts.serve);
  if (!uri) {
    std::cerr << "cannot listen: " << relay::describe(uri.error()) << std::endl;
    return 1;
  }
  std::cout << "listening on " << *uri << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  return 0;
}

int run(relay::node_config& cfg, const options& opts) {
  // With --listen the run ends on SIGTERM, taken by sigwait; else the
  // signals keep their default action.
  sigset_t signals{};
  if (!opts.listen.empty())
    signals = block_stop_signals();
  relay::node n{cfg};
  auto& sys = n.system();
  if (auto address = n.metrics_address(); !address.empty())
    std::cout << "metrics on http://" << address << "/metrics" << std::endl;
  if (!opts.listen.empty()) {
    // For tools: relayctl tree URI shows the pool while it runs.
    auto uri = n.listen(opts.listen);
    if (!uri) {
      std::cerr << "cannot listen: " << relay::describe(uri.error())
                << std::endl;
      return 1;
    }
    std::cout << "listening on " << *uri << std::endl;
  }
  auto started = std::chrono::steady_clock::now();
  std::vector<relay::child_spec> workers;
  for (size_t i = 0; i < opts.workers; ++i) {
    relay::child_spec w;
    w.id = "worker-" + std::to_string(i);
    auto seed = opts.seed * 1000003 + i;
    if (opts.workers_on.empty())
      w.start = [rate = opts.crash_rate, seed](caf::actor_system& sys) {
        return sys.spawn(worker, rate, seed);
      };
    else
      w.start = relay::remote_start(n, opts.workers_on, "pipeline.worker",
                                    caf::make_message(opts.crash_rate, seed));
    workers.push_back(std::move(w));
  }
  caf::scoped_actor self{sys};
  relay::supervisor_spec flags;
  flags.name = "pool";
  flags.strategy = relay::restart_strategy::one_for_one;
  flags.intensity = opts.max_restarts;
  flags.period = 1s;
  flags.node = &n; // visible to relayctl tree
  auto pool = relay::spawn_supervisor(sys, flags, std::move(workers));
  if (!pool) {
    std::cerr << relay::describe(pool.error()) << std::endl;
    return 1;
  }
  auto sink_actor = sys.spawn(sink, opts.jobs, caf::actor{self});
  auto source_actor = sys.spawn(source, *pool, sink_actor, opts);
  self->monitor(*pool);
  int rc = 0;
  bool finished = false;
  std::string pool_error;
  self->receive_while([&] { return !finished; })(
    [&](finished_atom, uint64_t done, uint64_t failed, uint64_t duplicates) {
      finished = true;
      uint64_t crashes = 0;
      uint64_t restarts = 0;
      // The pool answers after the exits queued before this request, and
      // sent their reports to the source before answering.
      self->request(*pool, 10s, relay::count_children_atom::value)
        .receive([](relay::child_counts&) {}, [](caf::error&) {});
      self->request(source_actor, 10s, finished_atom::value)
        .receive([&](uint64_t c, uint64_t r) { crashes = c; restarts = r; },
                 [&](caf::error&) {});
      auto seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - started)
                       .count();
      std::ostringstream json;
      json << "{\"jobs\":" << opts.jobs << ",\"done\":" << done
           << ",\"failed\":" << failed << ",\"duplicates\":" << duplicates
           << ",\"crashes\":" << crashes << ",\"restarts\":" << restarts
           << ",\"workers\":" << opts.workers << ",\"workers_on\":\""
           << (opts.workers_on.empty() ? "local" : opts.workers_on)
           << "\",\"seconds\":" << seconds << "}";
      std::cout << json.str() << std::endl;
      rc = failed == 0 && duplicates == 0 && done == opts.jobs ? 0 : 2;
      if (!opts.listen.empty()) {
        // Stay up for tools, pool and all, until SIGINT or SIGTERM.
        std::cout << "finished; stop with SIGTERM" << std::endl;
        int sig = 0;
        sigwait(&signals, &sig);
      }
    },
    [&](caf::down_msg&) {
      // The pool gave up; the source reports its jobs failed and the sink
      // finishes the count.
    },
    caf::after(std::chrono::seconds{300}) >> [&] {
      std::cerr << "no result within 300 s" << std::endl;
      finished = true;
      rc = 1;
    });
  for (auto& a : {source_actor, sink_actor, caf::actor_cast<caf::actor>(*pool)}) {
    self->send_exit(a, caf::exit_reason::user_shutdown);
    self->wait_for(a);
  }
  return rc;
}

} // namespace pipeline

int main(int argc, char** argv) {
  pipeline::options opts;
  CLI::App app{"supervised_pipeline: jobs through a supervised pool of "
               "workers that crash at random"};
  app.add_option("--jobs", opts.jobs, "number of jobs")->capture_default_str();
  app.add_option("--workers", opts.workers, "workers in the pool")
    ->capture_default_str();
  app.add_option("--crash-rate", opts.crash_rate,
                 "probability that a worker crashes on a job")
    ->check(CLI::Range(0.0, 0.9))
    ->capture_default_str();
  app.add_option("--seed", opts.seed, "random seed")->capture_default_str();
  app.add_option("--max-attempts", opts.max_attempts,
                 "attempts per job before it is reported failed")
    ->capture_default_str();
  app.add_option("--max-restarts", opts.max_restarts,
                 "restart intensity of the pool (restarts per second)")
    ->capture_default_str();
  app.add_option("--workers-on", opts.workers_on,
                 "run the pool's workers on the node at this URI");
  app.add_option("--serve", opts.serve,
                 "host workers for another pipeline: listen on this URI");
  app.add_option("--listen", opts.listen,
                 "listen on this URI for tools (relayctl) and stay up after "
                 "the run until SIGTERM");
  app.add_option("--cookie-file", opts.cookie_file,
                 "secret for tcp (or set RELAY_COOKIE)");
  std::string metrics;
  app.add_option("--metrics", metrics,
                 "serve Prometheus metrics on HOST:PORT (port 0: any), e.g. "
                 "127.0.0.1:9464 (relay.metrics.listen)");
  CLI11_PARSE(app, argc, argv);
  relay::node_config cfg;
  cfg.add_message_type<pipeline::job>().add_message_type<pipeline::result>();
  relay::add_supervisor_types(cfg);
  cfg.add_actor_type("pipeline.worker", pipeline::worker);
  cfg.cookie_file = opts.cookie_file;
  cfg.metrics_listen = metrics;
  cfg.node_name = opts.serve.empty() ? "pipeline" : "pipeline-workers";
  try {
    if (!opts.serve.empty())
      return pipeline::serve(cfg, opts);
    return pipeline::run(cfg, opts);
  } catch (const relay::config_error& ex) {
    // A bad --metrics address, an unreadable cookie file, ...
    std::cerr << "supervised_pipeline: " << ex.what() << std::endl;
    return 2;
  }
}
