// A worker process of the multiprocess sample: started by the coordinator
// (a deployment file names it), connects back, registers its worker actor
// with the coordinator, says it is ready, and squares numbers until SIGTERM.
// SIGHUP makes it print "reloaded".

#include <caf/all.hpp>

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>

#include "messages.hpp"
#include "relay/node.hpp"
#include "relay/process_child.hpp"
#include "relay/signals.hpp"

namespace {

/// Squares an item's value, spending `work_us` microseconds of CPU on it.
caf::behavior worker(caf::event_based_actor*, int64_t work_us) {
  return {
    [work_us](const multiprocess::item& x) {
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds{work_us};
      while (std::chrono::steady_clock::now() < until) {
      }
      return multiprocess::item{x.id, x.value * x.value};
    },
  };
}

caf::behavior reloader(caf::event_based_actor*) {
  return {[](relay::sighup_atom) {
    std::cout << "worker " << ::getpid() << ": SIGHUP: reloaded" << std::endl;
  }};
}

} // namespace

int main(int argc, char** argv) {
  int64_t work_us = argc > 1 ? std::stoll(argv[1]) : 200;
  relay::node_config cfg;
  auto& signals = cfg.add_module<relay::signal_module>();
  cfg.add_message_type<multiprocess::item>();
  cfg.node_name = "worker-" + std::to_string(::getpid());
  relay::node n{cfg};
  auto parent = relay::connect_to_parent(n);
  if (!parent) {
    std::cerr << "worker: " << relay::describe(parent.error()) << std::endl;
    return 2;
  }
  auto w = n.system().spawn(worker, work_us);
  auto coordinator = n.lookup(*parent, "coordinator");
  if (!coordinator) {
    std::cerr << "worker: " << relay::describe(coordinator.error()) << std::endl;
    return 2;
  }
  caf::anon_send(*coordinator, multiprocess::register_atom::value, w,
                 static_cast<int32_t>(::getpid()));
  auto hup = n.system().spawn(reloader);
  signals.subscribe_hangup(hup);
  if (auto err = relay::notify_ready(n)) {
    std::cerr << "worker: " << relay::describe(err) << std::endl;
    return 2;
  }
  // Until SIGTERM, or until the parent goes (PDEATHSIG, or its channel).
  auto quit = n.system().spawn([&signals](caf::event_based_actor*) {
    return caf::behavior{
      [&signals](const relay::node_down_msg&) { signals.request_shutdown(); }};
  });
  n.monitor_node(quit, *parent);
  signals.wait_for_shutdown();
  signals.unsubscribe_hangup(hup);
  for (auto& a : {w, hup, quit})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  return 0;
}
