// dbus_bench: D-Bus method calls through a private dbus-daemon (sd-bus),
// which this program starts and stops itself (never the system bus).
//
//   dbus_bench rtt|throughput [--size B] [--count N] [--cpus S,C]
//
// rtt: a method call Echo(ay) -> ay; throughput: calls without reply
// (Push(ay)), measured at the receiving service, then Done() -> elapsed.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>

#include "bench_common.hpp"

extern char** environ;

namespace {

constexpr const char* service = "org.relay.Bench";
constexpr const char* path = "/org/relay/Bench";
constexpr const char* iface = "org.relay.Bench";

using bench::now_ns;
using bench::pin;

[[noreturn]] void die(const char* what, int rc) {
  std::fprintf(stderr, "dbus_bench: %s: %s\n", what, std::strerror(-rc));
  std::exit(1);
}

sd_bus* connect_bus(const std::string& address) {
  sd_bus* bus = nullptr;
  int rc;
  if ((rc = sd_bus_new(&bus)) < 0 || (rc = sd_bus_set_address(bus, address.c_str())) < 0
      || (rc = sd_bus_set_bus_client(bus, 1)) < 0 || (rc = sd_bus_start(bus)) < 0)
    die("connecting to the private bus", rc);
  return bus;
}

struct counter {
  uint64_t count = 0;
  int64_t first = 0;
  int64_t last = 0;
  bool done = false;
};

int on_echo(sd_bus_message* m, void*, sd_bus_error*) {
  const void* data;
  size_t len;
  sd_bus_message_read_array(m, 'y', &data, &len);
  sd_bus_message* reply = nullptr;
  sd_bus_message_new_method_return(m, &reply);
  sd_bus_message_append_array(reply, 'y', data, len);
  auto rc = sd_bus_send(nullptr, reply, nullptr);
  sd_bus_message_unref(reply);
  return rc < 0 ? rc : 1;
}

int on_push(sd_bus_message*, void* user, sd_bus_error*) {
  auto* c = static_cast<counter*>(user);
  auto t = now_ns();
  if (c->count++ == 0)
    c->first = t;
  c->last = t;
  return 1;
}

int on_done(sd_bus_message* m, void* user, sd_bus_error*) {
  auto* c = static_cast<counter*>(user);
  c->done = true;
  return sd_bus_reply_method_return(m, "txx", c->count, c->first, c->last);
}

const sd_bus_vtable vtable[] = {
  SD_BUS_VTABLE_START(0),
  SD_BUS_METHOD("Echo", "ay", "ay", on_echo, 0),
  SD_BUS_METHOD("Push", "ay", "", on_push, SD_BUS_VTABLE_METHOD_NO_REPLY),
  SD_BUS_METHOD("Done", "", "txx", on_done, 0),
  SD_BUS_VTABLE_END,
};

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dbus_bench rtt|throughput [--size B] "
                         "[--count N] [--cpus S,C]\n");
    return 2;
  }
  std::string mode = argv[1];
  bench::options opt;
  if (!opt.parse(argc, argv, 2)) {
    std::fprintf(stderr, "dbus_bench: bad option\n");
    return 2;
  }
  auto size = opt.size;
  auto count = opt.count;
  auto server_cpu = opt.server_cpu;
  auto client_cpu = opt.client_cpu;
  // A private daemon, with a configuration that lets us talk to ourselves.
  char dir_tmpl[] = "/tmp/relay-dbus-XXXXXX";
  std::string dir = mkdtemp(dir_tmpl);
  auto config = dir + "/bus.conf";
  FILE* f = std::fopen(config.c_str(), "w");
  std::fprintf(f,
               "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus "
               "Configuration 1.0//EN\" "
               "\"http://www.freedesktop.org/standards/dbus/1.0/"
               "busconfig.dtd\">\n<busconfig><type>session</type>"
               "<listen>unix:path=%s/bus</listen><auth>EXTERNAL</auth>"
               "<limit name=\"max_incoming_bytes\">1000000000</limit>"
               "<limit name=\"max_outgoing_bytes\">1000000000</limit>"
               "<limit name=\"max_message_size\">100000000</limit>"
               "<policy context=\"default\"><allow send_destination=\"*\"/>"
               "<allow receive_sender=\"*\"/><allow own=\"*\"/>"
               "</policy></busconfig>\n",
               dir.c_str());
  std::fclose(f);
  int addr_pipe[2];
  if (pipe(addr_pipe) != 0)
    return 1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, addr_pipe[1], 1);
  // The daemon complains that it may not raise its fd limit: not our case.
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::string config_arg = "--config-file=" + config;
  const char* daemon_argv[] = {"dbus-daemon", config_arg.c_str(), "--nofork",
                               "--print-address", nullptr};
  pid_t daemon = -1;
  if (posix_spawnp(&daemon, "dbus-daemon", &actions, nullptr,
                   const_cast<char**>(daemon_argv), environ)
      != 0) {
    std::fprintf(stderr, "dbus_bench: cannot start dbus-daemon\n");
    return 1;
  }
  close(addr_pipe[1]);
  char addr_buf[512] = {};
  size_t got = 0;
  while (got < sizeof(addr_buf) - 1 && std::strchr(addr_buf, '\n') == nullptr) {
    auto n = read(addr_pipe[0], addr_buf + got, sizeof(addr_buf) - 1 - got);
    if (n <= 0)
      break;
    got += static_cast<size_t>(n);
  }
  std::string address{addr_buf, std::strcspn(addr_buf, "\n")};
  int ready[2];
  if (pipe(ready) != 0)
    return 1;
  auto server = fork();
  if (server == 0) {
    pin(server_cpu);
    auto* bus = connect_bus(address);
    counter c;
    sd_bus_add_object_vtable(bus, nullptr, path, iface, vtable, &c);
    if (auto rc = sd_bus_request_name(bus, service, 0); rc < 0)
      die("request name", rc);
    char one = 1;
    if (write(ready[1], &one, 1) != 1)
      _exit(1);
    for (;;) {
      auto rc = sd_bus_process(bus, nullptr);
      if (rc < 0)
        break;
      if (rc == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
        break;
    }
    _exit(0);
  }
  pin(client_cpu);
  close(ready[1]); // a server that dies ends the wait below
  char one;
  if (read(ready[0], &one, 1) != 1) {
    kill(daemon, SIGTERM);
    waitpid(daemon, nullptr, 0);
    return 1;
  }
  auto* bus = connect_bus(address);
  std::vector<uint8_t> payload(size, 'x');
  if (mode == "rtt") {
    std::vector<double> rtts;
    for (size_t i = 0; i < count; ++i) {
      auto t0 = now_ns();
      sd_bus_message* m = nullptr;
      sd_bus_message* reply = nullptr;
      sd_bus_message_new_method_call(bus, &m, service, path, iface, "Echo");
      sd_bus_message_append_array(m, 'y', payload.data(), payload.size());
      sd_bus_error err = SD_BUS_ERROR_NULL;
      if (auto rc = sd_bus_call(bus, m, 0, &err, &reply); rc < 0)
        die("Echo", rc);
      sd_bus_message_unref(m);
      sd_bus_message_unref(reply);
      rtts.push_back(static_cast<double>(now_ns() - t0) / 1000.0);
    }
    bench::print_rtt("dbus", "dbus-daemon", size, std::move(rtts));
  } else {
    for (size_t i = 0; i < count; ++i) {
      sd_bus_message* m = nullptr;
      sd_bus_message_new_method_call(bus, &m, service, path, iface, "Push");
      sd_bus_message_set_expect_reply(m, 0);
      sd_bus_message_append_array(m, 'y', payload.data(), payload.size());
      if (auto rc = sd_bus_send(bus, m, nullptr); rc < 0)
        die("Push", rc);
      sd_bus_message_unref(m);
      if (i % 256 == 255)
        sd_bus_flush(bus);
    }
    sd_bus_message* reply = nullptr;
    sd_bus_error err = SD_BUS_ERROR_NULL;
    if (auto rc = sd_bus_call_method(bus, service, path, iface, "Done", &err,
                                     &reply, "");
        rc < 0)
      die("Done", rc);
    uint64_t n = 0;
    int64_t first = 0;
    int64_t last = 0;
    sd_bus_message_read(reply, "txx", &n, &first, &last);
    bench::print_throughput("dbus", "dbus-daemon", size, n, last - first,
                            ", \"sent\": " + std::to_string(count));
  }
  sd_bus_unref(bus);
  kill(server, SIGTERM);
  waitpid(server, nullptr, 0);
  kill(daemon, SIGTERM);
  waitpid(daemon, nullptr, 0);
  unlink(config.c_str());
  unlink((dir + "/bus").c_str());
  rmdir(dir.c_str());
  return 0;
}
