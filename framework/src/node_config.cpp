#include "relay/node_config.hpp"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <caf/config_option_adder.hpp>

#include "relay/transport.hpp"

namespace relay {

namespace {

struct unique_file {
  int fd;
  ~unique_file() {
    if (fd >= 0)
      ::close(fd);
  }
};

} // namespace

node_config::node_config() {
  // CAF's idle workers poll every 50 us for 25 ms after each job ("moderate"
  // polling), which put one to two such sleeps into every remote round trip
  // (measured: 130 us -> 48 us RTT over uds on one CPU). Without that phase
  // they spin briefly, then wait on a condition variable that an enqueue
  // signals. Overridable like any CAF option.
  set("work-stealing.moderate-poll-attempts", size_t{0});
  opt_group{custom_options_, "relay"}
    .add(node_name, "node-name", "name of this node in logs and handshakes")
    .add(max_frame_size, "max-frame-size", "bound on a frame body in bytes")
    .add(handshake_timeout, "handshake-timeout", "bound on a peer's handshake")
    .add(connect_timeout, "connect-timeout", "bound on connecting to a peer")
    .add(lookup_timeout, "lookup-timeout", "bound on a blocking lookup")
    .add(spawn_timeout, "spawn-timeout", "bound on a remote spawn's answer")
    .add(allow_remote_spawn, "allow-remote-spawn",
         "let peers spawn the actor types registered with add_actor_type")
    .add(heartbeat_interval, "heartbeat-interval",
         "idle time after which a connection carries a heartbeat")
    .add(heartbeat_timeout, "heartbeat-timeout",
         "silence after which a connection is closed as dead")
    .add(allow_other_uids, "allow-other-uids",
         "accept peers of local transports running as another user")
    .add(cookie_file, "cookie-file",
         "file with the secret that authenticates peers (mode 0600)")
    .add(deliver_on_io_thread, "deliver-on-io-thread",
         "run receiving actors on the I/O thread (no worker wake-up)")
    .add(max_queued_bytes, "max-queued-bytes",
         "bound on a connection's outbound queue in bytes")
    .add(max_inbound_bytes, "max-inbound-bytes",
         "bound on a peer's delivered, unprocessed message bytes")
    .add(resume, "resume", "resume the session of a broken connection")
    .add(resume_buffer, "resume-buffer",
         "bound on the bytes a session keeps for resending")
    .add(hidden, "hidden",
         "connect as a hidden node: no node events on either side (tools)");
  opt_group{custom_options_, "relay.metrics"}.add(
    metrics_listen, "listen",
    "HOST:PORT of an HTTP endpoint serving /metrics (Prometheus); off if "
    "empty");
  declare_builtin_transport_options(
    [this](caf::string_view category) { return module_options(category); });
}

node_config::~node_config() = default;

caf::config_option_adder node_config::module_options(caf::string_view category) {
  return caf::config_option_adder{custom_options_, category};
}

void node_config::add_module_impl(std::shared_ptr<node_module> module) {
  if (!module)
    throw registration_error("node_config::add_module: null module");
  for (auto& m : modules_)
    if (m->name() == module->name())
      throw registration_error("module '" + module->name()
                               + "' is already added");
  module->configure(*this);
  modules_.push_back(std::move(module));
}

std::string node_config::load_secret() const {
  std::string secret;
  std::string origin;
  if (!cookie_file.empty()) {
    origin = "relay.cookie-file " + cookie_file;
    unique_file f{::open(cookie_file.c_str(), O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0)
      throw config_error(origin + ": cannot open: " + std::strerror(errno));
    struct stat st{};
    if (::fstat(f.fd, &st) < 0)
      throw config_error(origin + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
      throw config_error(origin + ": not a regular file");
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o",
                    static_cast<unsigned>(st.st_mode & 07777));
      throw config_error(origin + ": readable or writable by group or others "
                         "(mode " + mode + "); refusing to use it as a "
                         "secret. Fix: chmod 600 " + cookie_file);
    }
    char buf[4096];
    for (;;) {
      auto n = ::read(f.fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        throw config_error(origin + ": cannot read: " + std::strerror(errno));
      if (n == 0)
        break;
      secret.append(buf, static_cast<size_t>(n));
      if (secret.size() > 65536)
        throw config_error(origin + ": larger than 64 KiB; not a cookie");
    }
  } else if (auto env = std::getenv(cookie_env); env != nullptr) {
    origin = std::string{"environment variable "} + cookie_env;
    secret = env;
  } else {
    return {};
  }
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back())))
    secret.pop_back();
  if (secret.size() < min_secret_size)
    throw config_error(origin + ": the secret has " + std::to_string(secret.size())
                       + " bytes; at least " + std::to_string(min_secret_size)
                       + " are required (e.g. head -c 32 /dev/urandom | "
                         "base64 > FILE)");
  return secret;
}

} // namespace relay
