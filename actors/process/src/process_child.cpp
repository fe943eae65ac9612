// Process children: the parent's side (process_start and the process
// actor) and the child's side (connect_to_parent, notify_ready).

#include "relay/process_child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>

#include <nlohmann/json.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "process_env.hpp"
#include "process_watcher.hpp"
#include "relay/detail/json_text.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"

extern char** environ;

namespace relay {

// -- errors ----------------------------------------------------------------------------

const char* to_string(process_errc x) {
  switch (x) {
    case process_errc::spawn_failed: return "spawn_failed";
    case process_errc::exited: return "exited";
    case process_errc::killed: return "killed";
    case process_errc::not_ready: return "not_ready";
    case process_errc::hung: return "hung";
    case process_errc::no_parent: return "no_parent";
  }
  return "unknown";
}

namespace {

constexpr caf::atom_value process_category = caf::atom("process");

const char* code_name(uint8_t code) {
  if (code == 0 || code > static_cast<uint8_t>(process_errc::no_parent))
    return "unknown";
  return to_string(static_cast<process_errc>(code));
}

const bool category_registered = [] {
  register_error_category(process_category, "process", code_name);
  return true;
}();

} // namespace

caf::error make_error(process_errc x, std::string what) {
  (void) category_registered;
  return caf::error{static_cast<uint8_t>(x), process_category,
                    caf::make_message(std::move(what))};
}

bool is(const caf::error& x, process_errc code) {
  return x.category() == process_category
         && x.code() == static_cast<uint8_t>(code);
}

// -- the process actor ----------------------------------------------------------------------

namespace {

using wait_ready_atom = caf::atom_constant<caf::atom("procwaitr")>;
using exited_atom = caf::atom_constant<caf::atom("procexit")>;
using ready_timeout_atom = caf::atom_constant<caf::atom("proctimeo")>;
using hung_check_atom = caf::atom_constant<caf::atom("prochung")>;

/// How long a process may keep running after its channel closed before it
/// counts as hung: its own exit (e.g. after kill -9, the channel closes
/// first) gets that long to be noticed with its real reason.
constexpr auto hung_grace = std::chrono::milliseconds{200};

/// The descriptor number of the inherited channel in the child.
constexpr int child_channel_fd = 3;

/// pidfd_send_signal(2): unlike kill(2), never hits another process that
/// reused the pid after ours was reaped.
void signal_process(int pidfd, int sig) {
  ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

struct process_state {
  static inline const char* name = "relay.process";
  std::string what; // "'exe' (pid 42)"
  pid_t pid = 0;
  /// Our own pidfd of the process, for signals.
  int pidfd = -1;
  caf::node_id child_node;
  bool ready = false;
  bool exited = false;
  bool stop_requested = false;
  bool hung = false;
  bool not_ready = false;
  std::vector<caf::response_promise> waiting;
};

std::string signal_text(int sig) {
  const char* name = ::strsignal(sig);
  return "killed by signal " + std::to_string(sig) + " ("
         + (name ? name : "unknown") + ")";
}

/// Why the process actor ends, from how the process ended.
caf::error exit_reason_of(const process_state& st, int code, int status) {
  bool by_signal = code == CLD_KILLED || code == CLD_DUMPED;
  if (st.hung)
    return make_error(process_errc::hung,
                      st.what
                        + ": its channel to the parent closed or went silent "
                          "while it ran; killed");
  if (st.not_ready)
    return make_error(process_errc::not_ready,
                      st.what + ": not ready within the start timeout; killed");
  if (st.stop_requested
      && ((code == CLD_EXITED && status == 0) || (by_signal && status == SIGTERM)))
    return caf::make_error(caf::exit_reason::user_shutdown);
  if (code == CLD_EXITED && status == 0)
    return caf::error{};
  if (code == CLD_EXITED)
    return make_error(process_errc::exited,
                      st.what + ": exit status " + std::to_string(status));
  if (by_signal)
    return make_error(process_errc::killed, st.what + ": " + signal_text(status));
  return make_error(process_errc::exited, st.what + ": ended (status unknown)");
}

caf::behavior process_actor(caf::stateful_actor<process_state>* self, node* n,
                            pid_t pid, int pidfd, std::string what,
                            caf::timespan start_timeout) {
  auto& st = self->state;
  st.pid = pid;
  st.pidfd = pidfd;
  st.what = std::move(what);
  // Whatever ends this actor ends the process (the watcher reaps it). The
  // pidfd makes this safe after the process is gone.
  self->attach_functor([pidfd](const caf::error&) {
    signal_process(pidfd, SIGKILL);
    ::close(pidfd);
  });
  self->set_exit_handler([self](caf::exit_msg& em) {
    auto& st = self->state;
    if (!em.reason || st.exited)
      return;
    // The supervisor stops us: SIGTERM, then wait (its timeout sends kill).
    st.stop_requested = true;
    signal_process(st.pidfd, SIGTERM);
  });
  self->delayed_send(self, start_timeout, ready_timeout_atom::value);
  // relayctl tree shows the pid beside the supervisor's child.
  n->add_introspection_source("tree", caf::actor_cast<caf::actor>(self));
  return {
    [self, n](process_ready_atom, int32_t child_pid) {
      auto& st = self->state;
      auto sender = self->current_sender();
      if (st.ready || child_pid != st.pid || !sender)
        return;
      st.ready = true;
      st.child_node = sender->node();
      // Its channel closing (or going silent) while it runs: hung.
      n->monitor_node(caf::actor_cast<caf::actor>(self), st.child_node);
      log(log_level::info, st.what + " is ready (node "
                             + caf::to_string(st.child_node) + ")");
      for (auto& rp : st.waiting)
        rp.deliver(ok_atom::value);
      st.waiting.clear();
    },
    [self](const node_down_msg& down) {
      auto& st = self->state;
      if (st.exited || down.node != st.child_node)
        return;
      self->delayed_send(self, hung_grace, hung_check_atom::value);
    },
    [self](hung_check_atom) {
      auto& st = self->state;
      if (st.exited)
        return;
      st.hung = true;
      signal_process(st.pidfd, SIGKILL);
    },
    [self](ready_timeout_atom) {
      auto& st = self->state;
      if (st.ready || st.exited)
        return;
      st.not_ready = true;
      signal_process(st.pidfd, SIGKILL);
    },
    [self](exited_atom, int32_t code, int32_t status) {
      auto& st = self->state;
      st.exited = true;
      auto reason = exit_reason_of(st, code, status);
      for (auto& rp : st.waiting)
        rp.deliver(reason ? reason
                          : make_error(process_errc::exited,
                                       st.what + ": exited before it was ready"));
      st.waiting.clear();
      self->quit(reason);
    },
    [self](wait_ready_atom) {
      auto& st = self->state;
      auto rp = self->make_response_promise();
      if (st.ready)
        rp.deliver(ok_atom::value);
      else
        st.waiting.push_back(rp);
      return rp;
    },
    [self](introspect_atom, const std::string&, const std::string&) {
      auto& st = self->state;
      nlohmann::json doc{{"kind", "process"},
                         {"actor", self->id()},
                         {"pid", st.pid},
                         {"process", st.what},
                         {"ready", st.ready}};
      if (st.child_node)
        doc["node"] = caf::to_string(st.child_node);
      return detail::json_text(doc);
    },
    [self](process_info_atom) {
      return caf::make_message(static_cast<int32_t>(self->state.pid),
                               self->state.child_node);
    },
  };
}

std::string random_token() {
  std::random_device rd;
  std::string result;
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i)
    result += hex[rd() % 16];
  return result;
}

/// The descriptors of a process child's channel.
struct channel {
  /// Ours, adopted by listen(parent_uri); empty for endpoint channels.
  std::vector<int> parent_fds;
  std::string parent_uri;
  /// The child's, to become descriptors 3, 4, ... (above 9 until then, so
  /// that no dup2 overwrites another).
  std::vector<int> child_fds;
  /// RELAY_PARENT for the child.
  std::string child_uri;
};

/// Moves `fd` above 9 (close-on-exec), closing the original.
int move_high(int fd) {
  if (fd > 9)
    return fd;
  auto moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return moved;
}

caf::expected<channel> make_channel(const process_spec& spec) {
  channel result;
  auto sys_error = [](const char* what) {
    return make_error(process_errc::spawn_failed,
                      std::string{what} + ": " + std::strerror(errno));
  };
  if (!spec.parent_uri.empty()) {
    result.child_uri = spec.parent_uri;
  } else if (spec.channel == "pipe") {
    int to_child[2];
    int to_parent[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0)
      return sys_error("pipe2");
    if (::pipe2(to_parent, O_CLOEXEC) != 0) {
      ::close(to_child[0]);
      ::close(to_child[1]);
      return sys_error("pipe2");
    }
    result.parent_fds = {to_parent[0], to_child[1]};
    result.parent_uri = "pipe://" + std::to_string(to_parent[0]) + ","
                        + std::to_string(to_child[1]);
    result.child_fds = {move_high(to_child[0]), move_high(to_parent[1])};
    result.child_uri = "pipe://" + std::to_string(child_channel_fd) + ","
                       + std::to_string(child_channel_fd + 1);
  } else if (spec.channel == "socketpair") {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return sys_error("socketpair");
    result.parent_fds = {sv[0]};
    result.parent_uri = "fd://" + std::to_string(sv[0]);
    result.child_fds = {move_high(sv[1])};
    result.child_uri = "fd://" + std::to_string(child_channel_fd);
  } else {
    return make_error(process_errc::spawn_failed,
                      "unknown channel '" + spec.channel
                        + "' (socketpair, pipe, or a parent_uri)");
  }
  return result;
}

/// Starts `spec` with `child_fds` as descriptors 3, 4, ... Returns the pid.
caf::expected<pid_t> spawn_process(const process_spec& spec,
                                   const std::vector<int>& child_fds,
                                   const std::string& parent_uri,
                                   const std::string& parent_name) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears close-on-exec on the new descriptor; everything else the
  // parent opened is close-on-exec and stays behind.
  for (size_t i = 0; i < child_fds.size(); ++i)
    posix_spawn_file_actions_adddup2(&actions, child_fds[i],
                                     child_channel_fd + static_cast<int>(i));
  if (!spec.working_dir.empty())
    posix_spawn_file_actions_addchdir_np(&actions, spec.working_dir.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv{*e};
    auto eq = kv.find('=');
    if (eq != std::string::npos)
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (auto& kvp : spec.env)
    env[kvp.first] = kvp.second;
  env[env_parent] = parent_uri;
  env[env_parent_pid] = std::to_string(::getpid());
  env[env_parent_name] = parent_name;
  std::vector<std::string> env_strings;
  for (auto& kvp : env)
    env_strings.push_back(kvp.first + "=" + kvp.second);
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args{spec.executable};
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  auto rc = ::posix_spawn(&pid, spec.executable.c_str(), &actions, &attr,
                          argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return make_error(process_errc::spawn_failed,
                      "cannot start '" + spec.executable + "': "
                        + std::strerror(rc));
  return pid;
}

} // namespace

child_start process_start(node& n, process_spec spec) {
  return child_start::async([&n, spec = std::move(spec)](
                              caf::event_based_actor* self, const caf::message&,
                              child_start::reply done) {
    auto ch = make_channel(spec);
    if (!ch) {
      done(std::move(ch.error()));
      return;
    }
    auto close_parent_end = [&] {
      for (int fd : ch->parent_fds)
        ::close(fd);
    };
    auto token = "relay.process." + random_token();
    auto pid = spawn_process(spec, ch->child_fds, ch->child_uri, token);
    for (int fd : ch->child_fds)
      ::close(fd);
    if (!pid) {
      close_parent_end();
      done(std::move(pid.error()));
      return;
    }
    auto what = "'" + spec.executable + "' (pid " + std::to_string(*pid) + ")";
    // Our child, not reaped before we watch it: the pid is still ours.
    auto pidfd = open_pidfd(*pid);
    auto own_pidfd = pidfd < 0 ? -1 : ::fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
    if (pidfd < 0 || own_pidfd < 0) {
      auto err = errno;
      ::kill(*pid, SIGKILL);
      ::waitpid(*pid, nullptr, 0);
      if (pidfd >= 0)
        ::close(pidfd);
      close_parent_end();
      done(make_error(process_errc::spawn_failed,
                      std::string{"pidfd_open: "} + std::strerror(err)));
      return;
    }
    auto proc = n.system().spawn(process_actor, &n, *pid, own_pidfd, what,
                                 spec.start_timeout);
    auto fail = [&](caf::error err) {
      close_parent_end();
      caf::anon_send_exit(proc, caf::exit_reason::kill);
      done(std::move(err));
    };
    // Exit noticed at once, reaped at once.
    if (auto err = process_watcher::instance().watch(
          pidfd, [proc](const siginfo_t& info) {
            caf::anon_send(proc, exited_atom::value,
                           static_cast<int32_t>(info.si_code),
                           static_cast<int32_t>(info.si_status));
          })) {
      // The watcher closed the pidfd; the process actor kills the process
      // as it ends, and nobody watches it: reap it here.
      fail(std::move(err));
      ::waitpid(*pid, nullptr, 0);
      return;
    }
    if (auto err = n.publish(proc, token)) {
      fail(std::move(err));
      return;
    }
    if (!ch->parent_uri.empty()) {
      auto accepted = n.listen(ch->parent_uri);
      if (!accepted) {
        fail(std::move(accepted.error()));
        return;
      }
      ch->parent_fds.clear(); // the connection owns them now
    }
    self->request(proc, caf::infinite, wait_ready_atom::value)
      .then(
        [&n, proc, token, done](ok_atom) {
          n.unpublish(token);
          done(proc);
        },
        [done](caf::error& err) { done(std::move(err)); });
  });
}

} // namespace relay
