// The multiprocess sample's coordinator: starts the worker processes a
// deployment file describes under a supervisor, hands out work items,
// hands an item out again when its worker dies, and prints what happens.
// Every item completes exactly once. See README.md.

#include <caf/all.hpp>

#include <CLI/CLI.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "messages.hpp"
#include "relay/deployment.hpp"
#include "relay/node.hpp"
#include "relay/signals.hpp"
#include "relay/supervisor.hpp"

using namespace std::chrono_literals;

namespace multiprocess {

void say(const std::string& line) {
  std::cout << line << std::endl;
}

struct options {
  std::string deployment;
  uint64_t items = 20000;
  bool exit_when_done = false;
};

struct coordinator_state {
  static inline const char* name = "multiprocess.coordinator";
  std::deque<item> queue;
  std::vector<caf::actor> idle;
  std::map<caf::actor_addr, item> busy;
  std::map<caf::actor_addr, int32_t> pids;
  std::set<uint64_t> completed;
  uint64_t duplicates = 0;
  uint64_t restarts = 0;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  bool finished = false;
  std::function<void()> dispatch;
};

caf::behavior coordinator(caf::stateful_actor<coordinator_state>* self,
                          options opts, std::atomic<bool>* done) {
  auto& st = self->state;
  for (uint64_t i = 1; i <= opts.items; ++i)
    st.queue.push_back(item{i, i});
  st.dispatch = [self] {
    auto& st = self->state;
    while (!st.queue.empty() && !st.idle.empty()) {
      auto w = st.idle.back();
      st.idle.pop_back();
      auto x = st.queue.front();
      st.queue.pop_front();
      st.busy[w.address()] = x;
      self->request(w, caf::infinite, x)
        .then(
          [self, w](const item& r) {
            auto& st = self->state;
            auto i = st.busy.find(w.address());
            if (i == st.busy.end() || i->second.id != r.id)
              return; // handed out again when the worker died
            st.busy.erase(i);
            if (r.value != r.id * r.id)
              say("wrong result for item " + std::to_string(r.id));
            if (!st.completed.insert(r.id).second)
              ++st.duplicates;
            st.idle.push_back(w);
            st.dispatch();
          },
          [](caf::error&) {
            // The worker's DOWN hands the item out again.
          });
    }
  };
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    st.idle.erase(std::remove_if(st.idle.begin(), st.idle.end(),
                                 [&](auto& x) { return x.address() == dm.source; }),
                  st.idle.end());
    auto pid = st.pids[dm.source];
    st.pids.erase(dm.source);
    auto i = st.busy.find(dm.source);
    if (i != st.busy.end()) {
      say("worker " + std::to_string(pid) + " died with item "
          + std::to_string(i->second.id) + " in flight: handing it out again");
      st.queue.push_front(i->second);
      st.busy.erase(i);
      st.dispatch();
    }
  });
  auto progress_every = std::max<uint64_t>(1, opts.items / 5);
  self->send(self, caf::tick_atom::value);
  return {
    [self](register_atom, caf::actor w, int32_t pid) {
      auto& st = self->state;
      self->monitor(w);
      st.pids[w.address()] = pid;
      st.idle.push_back(w);
      say("worker " + std::to_string(pid) + " registered");
      st.dispatch();
    },
    [self, opts, done, progress_every](caf::tick_atom) {
      // Progress and the end, checked every 100 ms.
      auto& st = self->state;
      if (st.finished)
        return;
      auto n = st.completed.size();
      static uint64_t last_report = 0;
      if (n / progress_every > last_report / progress_every && n < opts.items)
        say("progress: " + std::to_string(n) + " of " + std::to_string(opts.items)
            + " items completed");
      last_report = n;
      if (n == opts.items) {
        st.finished = true;
        auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                                  - st.started)
                      .count();
        std::ostringstream json;
        json << "{\"items\":" << opts.items << ",\"completed\":" << n
             << ",\"duplicates\":" << st.duplicates
             << ",\"lost\":" << (opts.items - n)
             << ",\"worker_restarts\":" << st.restarts
             << ",\"items_per_s\":" << static_cast<uint64_t>(n / secs)
             << ",\"seconds\":" << secs << "}";
        say(json.str());
        done->store(true);
        return;
      }
      self->delayed_send(self, 100ms, caf::tick_atom::value);
    },
    [self](relay::supervisor_report& r) {
      using kind = relay::supervisor_report::kind;
      if (r.what == kind::child_terminated)
        say(r.child_id + " crashed: " + relay::describe(r.reason));
      else if (r.what == kind::started && r.restart) {
        ++self->state.restarts;
        say(r.child_id + " restarted");
      } else if (r.what != kind::started)
        say("supervisor: " + relay::to_string(r));
    },
    [self, opts](relay::sighup_atom) {
      auto d = relay::load_deployment(opts.deployment);
      say(std::string{"coordinator: SIGHUP: reloaded "} + opts.deployment + ": "
          + (d ? std::to_string(d->processes.size()) + " process entries, valid"
               : relay::describe(d.error())));
      for (auto& kvp : self->state.pids)
        ::kill(kvp.second, SIGHUP);
    },
  };
}

} // namespace multiprocess

int main(int argc, char** argv) {
  multiprocess::options opts;
  CLI::App app{"multiprocess coordinator: work items through supervised worker "
               "processes"};
  opts.deployment = (std::filesystem::path{argv[0]}.parent_path()
                     / "multiprocess_workers.toml")
                      .string();
  app.add_option("--deployment", opts.deployment, "the workers' deployment file")
    ->capture_default_str();
  app.add_option("--items", opts.items, "work items")->capture_default_str();
  app.add_flag("--exit-when-done", opts.exit_when_done,
               "exit after the last item instead of waiting for SIGTERM");
  CLI11_PARSE(app, argc, argv);
  auto d = relay::load_deployment(opts.deployment);
  if (!d) {
    std::cerr << relay::describe(d.error()) << std::endl;
    return 2;
  }
  std::string run_dir = (std::filesystem::temp_directory_path() / "relay-mp-XXXXXX").string();
  if (!::mkdtemp(run_dir.data())) {
    std::cerr << "cannot make a run directory" << std::endl;
    return 2;
  }
  int rc = 0;
  {
    relay::node_config cfg;
    auto& signals = cfg.add_module<relay::signal_module>();
    cfg.node_name = "coordinator";
    cfg.add_message_type<multiprocess::item>();
    relay::add_supervisor_types(cfg);
    relay::node n{cfg};
    std::vector<std::pair<std::string, std::string>> endpoints;
    for (auto& scheme : d->endpoint_channels()) {
      auto uri = n.listen(scheme + "://" + run_dir + "/" + scheme + ".sock");
      if (!uri) {
        std::cerr << relay::describe(uri.error()) << std::endl;
        return 2;
      }
      endpoints.emplace_back(scheme, *uri);
      // Where its workers connect, and where `relayctl tree` looks in.
      multiprocess::say("coordinator listening on " + *uri);
    }
    std::atomic<bool> done{false};
    auto coord = n.system().spawn(multiprocess::coordinator, opts, &done);
    n.publish(coord, "coordinator");
    signals.subscribe_hangup(coord);
    auto children = relay::deployment_children(n, *d, endpoints);
    if (!children) {
      std::cerr << relay::describe(children.error()) << std::endl;
      return 2;
    }
    auto spec = d->supervisor;
    spec.report_to = coord;
    spec.node = &n;
    multiprocess::say("coordinator " + std::to_string(::getpid()) + ": starting "
                      + std::to_string(children->size()) + " worker processes");
    auto sup = relay::spawn_supervisor(n.system(), spec, std::move(*children));
    if (!sup) {
      std::cerr << relay::describe(sup.error()) << std::endl;
      return 2;
    }
    caf::scoped_actor self{n.system()};
    self->monitor(*sup);
    bool gave_up = false;
    for (;;) {
      if (auto sig = signals.wait_for_shutdown(100ms)) {
        multiprocess::say(std::string{*sig ? ::strsignal(*sig) : "shutdown"}
                          + ": stopping the workers");
        break;
      }
      if (opts.exit_when_done && done.load())
        break;
      self->receive([&](caf::down_msg&) { gave_up = true; },
                    caf::after(std::chrono::seconds{0}) >> [] {});
      if (gave_up) {
        multiprocess::say("the supervisor gave up");
        rc = 1;
        break;
      }
    }
    if (!gave_up) {
      self->send_exit(*sup, caf::exit_reason::user_shutdown);
      self->wait_for(*sup);
    }
    signals.unsubscribe_hangup(coord);
    self->send_exit(coord, caf::exit_reason::user_shutdown);
    self->wait_for(coord);
    multiprocess::say("all workers stopped");
  }
  std::error_code ec;
  std::filesystem::remove_all(run_dir, ec);
  return rc;
}
