// zmq_bench: ZeroMQ (libzmq) between a parent and a forked child.
//
//   zmq_bench ipc|tcp rtt|throughput [--size B] [--count N] [--cpus S,C]
//
// rtt: REQ/REP; throughput: PUSH/PULL, measured at the receiver (first to
// last message). The child (server) runs on CPU S, the parent on CPU C.

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <zmq.h>

#include "bench_common.hpp"

namespace {

using bench::now_ns;
using bench::pin;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "zmq_bench: %s: %s\n", what, zmq_strerror(zmq_errno()));
  std::exit(1);
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: zmq_bench ipc|tcp rtt|throughput [--size B] "
                         "[--count N] [--cpus S,C]\n");
    return 2;
  }
  std::string transport = argv[1];
  std::string mode = argv[2];
  bench::options opt;
  if (!opt.parse(argc, argv, 3)) {
    std::fprintf(stderr, "zmq_bench: bad option\n");
    return 2;
  }
  auto size = opt.size;
  auto count = opt.count;
  auto server_cpu = opt.server_cpu;
  auto client_cpu = opt.client_cpu;
  std::string endpoint = transport == "ipc"
                           ? "ipc:///tmp/zmq-bench-" + std::to_string(getpid())
                           : "tcp://127.0.0.1:" + std::to_string(20000 + getpid() % 20000);
  int report[2];
  if (pipe(report) != 0)
    return 1;
  bool rtt = mode == "rtt";
  auto pid = fork();
  if (pid == 0) {
    pin(server_cpu);
    auto* ctx = zmq_ctx_new();
    auto* s = zmq_socket(ctx, rtt ? ZMQ_REP : ZMQ_PULL);
    if (zmq_bind(s, endpoint.c_str()) != 0)
      die("bind");
    char ready = 1;
    if (write(report[1], &ready, 1) != 1)
      return 1;
    std::vector<char> buf(size);
    if (rtt) {
      for (size_t i = 0; i < count; ++i) {
        auto n = zmq_recv(s, buf.data(), size, 0);
        zmq_send(s, buf.data(), static_cast<size_t>(n), 0);
      }
    } else {
      zmq_recv(s, buf.data(), size, 0);
      auto first = now_ns();
      for (size_t i = 1; i < count; ++i)
        zmq_recv(s, buf.data(), size, 0);
      int64_t elapsed = now_ns() - first;
      if (write(report[1], &elapsed, sizeof(elapsed)) < 0)
        return 1;
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    _exit(0);
  }
  pin(client_cpu);
  char ready;
  if (read(report[0], &ready, 1) != 1)
    return 1;
  auto* ctx = zmq_ctx_new();
  auto* s = zmq_socket(ctx, rtt ? ZMQ_REQ : ZMQ_PUSH);
  if (zmq_connect(s, endpoint.c_str()) != 0)
    die("connect");
  std::vector<char> buf(size, 'x');
  if (rtt) {
    std::vector<double> rtts;
    for (size_t i = 0; i < count; ++i) {
      auto t0 = now_ns();
      zmq_send(s, buf.data(), size, 0);
      zmq_recv(s, buf.data(), size, 0);
      rtts.push_back(static_cast<double>(now_ns() - t0) / 1000.0);
    }
    bench::print_rtt("zeromq", transport, size, std::move(rtts));
  } else {
    for (size_t i = 0; i < count; ++i)
      zmq_send(s, buf.data(), size, 0);
    int64_t elapsed = 0;
    if (read(report[0], &elapsed, sizeof(elapsed)) != sizeof(elapsed))
      return 1;
    bench::print_throughput("zeromq", transport, size, count, elapsed);
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  int status = 0;
  waitpid(pid, &status, 0);
  if (transport == "ipc")
    unlink(endpoint.substr(6).c_str());
  return 0;
}
