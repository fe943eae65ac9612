// The child's side of a process child: connecting back to the parent over
// the inherited channel and saying when it is ready.

#include "relay/process_child.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include <caf/scoped_actor.hpp>

#include "process_env.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"

namespace relay {

// -- the child's side -------------------------------------------------------------------------

namespace {

std::mutex parent_mtx;
caf::node_id parent_node;
std::string parent_name;

} // namespace

caf::expected<caf::node_id> connect_to_parent(node& n) {
  auto uri_env = std::getenv(env_parent);
  auto ppid_env = std::getenv(env_parent_pid);
  auto name_env = std::getenv(env_parent_name);
  if (!uri_env || !ppid_env || !name_env)
    return make_error(process_errc::no_parent,
                      "this process was not started by relay::process_start "
                      "(no RELAY_PARENT in the environment)");
  // Die with the parent. The parent may have died between our start and
  // this call: then our parent is someone else already.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != static_cast<pid_t>(std::atoi(ppid_env))) {
    log(log_level::error, "the parent process is gone; exiting");
    std::_Exit(1);
  }
  std::string uri{uri_env};
  std::string name{name_env};
  // Not for this process's own children (descriptor 3 is close-on-exec
  // once adopted).
  ::unsetenv(env_parent);
  ::unsetenv(env_parent_pid);
  ::unsetenv(env_parent_name);
  auto id = n.connect(uri);
  if (!id)
    return id;
  std::lock_guard<std::mutex> guard{parent_mtx};
  parent_node = *id;
  parent_name = std::move(name);
  return id;
}

caf::error notify_ready(node& n) {
  caf::node_id parent;
  std::string name;
  {
    std::lock_guard<std::mutex> guard{parent_mtx};
    parent = parent_node;
    name = parent_name;
  }
  if (!parent)
    return make_error(process_errc::no_parent,
                      "notify_ready needs connect_to_parent first");
  auto proc = n.lookup(parent, name);
  if (!proc)
    return std::move(proc.error());
  // Not anonymous: the parent learns this node's id from the sender.
  caf::scoped_actor self{n.system()};
  self->send(*proc, process_ready_atom::value, static_cast<int32_t>(::getpid()));
  return caf::none;
}

} // namespace relay
