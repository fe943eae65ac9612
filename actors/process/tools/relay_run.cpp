// relay-run: starts the process tree a deployment file describes and prints
// what happens to it as it happens. SIGTERM or SIGINT stops the tree in
// reverse order and exits 0 (a second one exits at once); SIGHUP is passed
// on to every running process. See docs/processes.md.

#include <caf/all.hpp>

#include <CLI/CLI.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "relay/deployment.hpp"
#include "relay/node.hpp"
#include "relay/process_child.hpp"
#include "relay/signals.hpp"
#include "relay/supervisor.hpp"

namespace {

using relay::supervisor_report;

void say(const std::string& line) {
  std::cout << "relay-run: " << line << std::endl;
}

/// Prints reports; asks each started process actor for its pid.
caf::behavior printer(caf::event_based_actor* self) {
  return {
    [self](supervisor_report& r) {
      using kind = supervisor_report::kind;
      switch (r.what) {
        case kind::started: {
          auto id = r.child_id;
          bool restart = r.restart;
          self->request(r.child, std::chrono::seconds{5},
                        relay::process_info_atom::value)
            .then([id, restart](int32_t pid, caf::node_id&) {
                    say((restart ? "restarted " : "started ") + id + " (pid "
                        + std::to_string(pid) + ")");
                  },
                  [id](caf::error&) { say("started " + id); });
          break;
        }
        case kind::child_terminated:
          say(r.child_id + " crashed: " + relay::describe(r.reason));
          break;
        case kind::start_error:
          say(r.child_id + " failed to start: " + relay::describe(r.reason));
          break;
        case kind::shutdown_error:
          say(r.child_id + " did not stop as asked: " + relay::describe(r.reason));
          break;
        case kind::reached_max_restart_intensity:
          say("gave up: too many restarts (last: " + r.child_id + ", "
              + relay::describe(r.reason) + ")");
          break;
        case kind::auto_shutdown:
          say("significant child " + r.child_id + " ended; stopping");
          break;
        case kind::shutdown:
          say("the tree is stopped (" + relay::describe(r.reason) + ")");
          break;
      }
    },
  };
}

/// Passes SIGHUP on to every running process of `sup`.
caf::behavior hangup_forwarder(caf::event_based_actor* self,
                               relay::supervisor_actor sup) {
  return {
    [self, sup](relay::sighup_atom) {
      self->request(sup, std::chrono::seconds{5}, relay::which_children_atom::value)
        .then([self](std::vector<relay::child_info>& xs) {
          for (auto& x : xs) {
            if (!x.handle)
              continue;
            auto id = x.id;
            self->request(x.handle, std::chrono::seconds{5},
                          relay::process_info_atom::value)
              .then([id](int32_t pid, caf::node_id&) {
                      ::kill(pid, SIGHUP);
                      say("SIGHUP passed on to " + id + " (pid "
                          + std::to_string(pid) + ")");
                    },
                    [](caf::error&) {});
          }
        });
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  std::string file;
  std::string run_dir;
  CLI::App app{"relay-run: start and supervise the processes of a deployment file"};
  app.add_option("deployment", file, "the deployment file (TOML)")->required();
  app.add_option("--run-dir", run_dir,
                 "directory for the parent's endpoints (default: a private "
                 "temporary directory)");
  CLI11_PARSE(app, argc, argv);
  auto d = relay::load_deployment(file);
  if (!d) {
    std::cerr << "relay-run: " << relay::describe(d.error()) << std::endl;
    return 2;
  }
  bool own_run_dir = run_dir.empty();
  if (own_run_dir) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "relay-run-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      std::cerr << "relay-run: cannot make a run directory" << std::endl;
      return 2;
    }
    run_dir = tmpl;
  }
  int rc = 0;
  {
    relay::node_config cfg;
    auto& signals = cfg.add_module<relay::signal_module>();
    cfg.node_name = "relay-run";
    relay::add_supervisor_types(cfg);
    relay::node n{cfg};
    std::vector<std::pair<std::string, std::string>> endpoints;
    for (auto& scheme : d->endpoint_channels()) {
      auto uri = n.listen(scheme + "://" + run_dir + "/parent-" + scheme + ".sock");
      if (!uri) {
        std::cerr << "relay-run: " << relay::describe(uri.error()) << std::endl;
        return 2;
      }
      endpoints.emplace_back(scheme, *uri);
    }
    auto children = relay::deployment_children(n, *d, endpoints);
    if (!children) {
      std::cerr << "relay-run: " << relay::describe(children.error()) << std::endl;
      return 2;
    }
    auto print = n.system().spawn(printer);
    auto spec = d->supervisor;
    spec.report_to = print;
    spec.node = &n;
    say("starting " + std::to_string(children->size()) + " process(es) from " + file);
    auto sup = relay::spawn_supervisor(n.system(), spec, std::move(*children));
    if (!sup) {
      std::cerr << "relay-run: " << relay::describe(sup.error()) << std::endl;
      return 2;
    }
    auto hup = n.system().spawn(hangup_forwarder, *sup);
    signals.subscribe_hangup(hup);
    caf::scoped_actor self{n.system()};
    self->monitor(*sup);
    std::optional<caf::error> ended;
    for (;;) {
      if (auto sig = signals.wait_for_shutdown(std::chrono::milliseconds{100})) {
        say(std::string{*sig ? ::strsignal(*sig) : "shutdown requested"}
            + ": stopping the tree in reverse order");
        break;
      }
      self->receive([&](caf::down_msg& dm) { ended = dm.reason; },
                    caf::after(std::chrono::seconds{0}) >> [] {});
      if (ended)
        break;
    }
    if (ended) {
      say("the supervisor ended: " + relay::describe(*ended));
      rc = 1;
    } else {
      self->send_exit(*sup, caf::exit_reason::user_shutdown);
      self->wait_for(*sup);
      say("all processes stopped");
    }
    signals.unsubscribe_hangup(hup);
    for (auto& a : {print, hup}) {
      self->send_exit(a, caf::exit_reason::user_shutdown);
      self->wait_for(a);
    }
  }
  if (own_run_dir) {
    std::error_code ec;
    std::filesystem::remove_all(run_dir, ec);
  }
  return rc;
}
