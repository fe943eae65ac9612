// A process child for tests/integration/process_child_test.cpp and the
// relay-run tests: connects back to its parent, publishes "echo", says it
// is ready (printing "ready <pid>"), prints "hangup <pid>" on SIGHUP, and
// runs until SIGTERM or until its parent goes away. Flags change that:
//   --fail-at-start   exit 3 before connecting (a child that cannot start)
//   --never-ready     connect but never call notify_ready
//   --exit-after-ready  exit 4 right after saying it is ready (a child that
//                     crashes at start-up every time)
// Heartbeats are fast (100 ms, timeout 300 ms) to match the test's node.

#include <caf/all.hpp>

#include <signal.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <unistd.h>

#include "relay/node.hpp"
#include "relay/process_child.hpp"

namespace {

caf::behavior echo(caf::event_based_actor*) {
  return {[](const std::string& x) { return x; }};
}

} // namespace

int main(int argc, char** argv) {
  bool fail_at_start = false;
  bool never_ready = false;
  bool exit_after_ready = false;
  for (int i = 1; i < argc; ++i) {
    fail_at_start |= std::strcmp(argv[i], "--fail-at-start") == 0;
    never_ready |= std::strcmp(argv[i], "--never-ready") == 0;
    exit_after_ready |= std::strcmp(argv[i], "--exit-after-ready") == 0;
  }
  if (fail_at_start)
    return 3;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  relay::node_config cfg;
  cfg.node_name = "process-child";
  cfg.heartbeat_interval = std::chrono::milliseconds{100};
  cfg.heartbeat_timeout = std::chrono::milliseconds{300};
  relay::node n{cfg};
  auto parent = relay::connect_to_parent(n);
  if (!parent) {
    std::cerr << relay::describe(parent.error()) << std::endl;
    return 2;
  }
  auto e = n.system().spawn(echo);
  if (auto err = n.publish(e, "echo")) {
    std::cerr << relay::describe(err) << std::endl;
    return 2;
  }
  // The parent going away ends this process too (besides PDEATHSIG).
  auto watcher = n.system().spawn([](caf::event_based_actor*) {
    return caf::behavior{[](const relay::node_down_msg&) { ::kill(::getpid(), SIGTERM); }};
  });
  n.monitor_node(watcher, *parent);
  if (!never_ready) {
    if (auto err = relay::notify_ready(n)) {
      std::cerr << relay::describe(err) << std::endl;
      return 2;
    }
    std::cout << "ready " << ::getpid() << std::endl;
    if (exit_after_ready) {
      // A round trip first: the ready message is then surely at the parent
      // (the connection keeps order), so this is a crash after the start.
      (void) n.lookup(*parent, "no-such-name");
      std::_Exit(4);
    }
  }
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP)
    std::cout << "hangup " << ::getpid() << std::endl;
  caf::anon_send_exit(e, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
  return 0;
}
