// raw_bench: the baselines, the same mechanisms with no framework. A parent
// and a forked child exchange fixed-size messages:
//
//   raw_bench uds|tcp|shm|mq rtt|throughput --size B --count N --cpus S,C
//   raw_bench memcpy rtt --size B --count N --cpus S,C
//
// uds: a Unix stream socket pair; tcp: loopback with TCP_NODELAY; shm: a
// shared single-producer/single-consumer ring per direction whose reader
// spins 20 us (yielding) and then sleeps on an eventfd, the writer ringing
// only a sleeping reader (the policy of Relay's shm transport); mq: a POSIX
// message queue per direction at the default unprivileged sizes (10
// messages of 8 KiB), blocking mq_send and mq_receive. One write per
// message. The child (server) runs on CPU S, the parent on CPU C. memcpy:
// the time of copying B bytes twice in one process, on CPU C, the
// reference for large messages.
// Throughput is measured at the receiver, first to last message.

#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

using bench::now_ns;
using bench::pin;

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

// -- byte streams: sockets, or an shm ring pair --------------------------------

struct stream {
  virtual ~stream() = default;
  virtual void write_all(const char* p, size_t n) = 0;
  virtual void read_all(char* p, size_t n) = 0;
};

struct socket_stream : stream {
  int fd;
  explicit socket_stream(int fd) : fd(fd) {
  }
  void write_all(const char* p, size_t n) override {
    while (n > 0) {
      auto w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0)
        die("send");
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  void read_all(char* p, size_t n) override {
    while (n > 0) {
      auto r = ::read(fd, p, n);
      if (r <= 0)
        die("read");
      p += r;
      n -= static_cast<size_t>(r);
    }
  }
};

// Two POSIX message queues; a message of up to 8 KiB per mq_send.
struct mq_stream : stream {
  static constexpr size_t message_size = 8192;
  int tx;
  int rx;
  std::vector<char> stage = std::vector<char>(message_size);
  mq_stream(int tx, int rx) : tx(tx), rx(rx) {
  }
  void write_all(const char* p, size_t n) override {
    while (n > 0) {
      auto k = std::min(n, message_size);
      if (::mq_send(tx, p, k, 0) != 0)
        die("mq_send");
      p += k;
      n -= k;
    }
  }
  void read_all(char* p, size_t n) override {
    while (n > 0) {
      bool direct = n >= message_size;
      auto r = ::mq_receive(rx, direct ? p : stage.data(), message_size,
                            nullptr);
      if (r <= 0)
        die("mq_receive");
      if (!direct)
        std::memcpy(p, stage.data(), static_cast<size_t>(r));
      p += r;
      n -= static_cast<size_t>(r);
    }
  }
};

constexpr size_t ring_capacity = size_t{1} << 20;

struct alignas(64) ring {
  alignas(64) std::atomic<uint64_t> tail{0};
  alignas(64) std::atomic<uint64_t> head{0};
  alignas(64) std::atomic<uint32_t> reader_sleeping{0};
  alignas(64) std::atomic<uint32_t> writer_waiting{0};
  alignas(64) char data[ring_capacity];
};

struct shm_stream : stream {
  ring* tx;
  ring* rx;
  int tx_bell; // the peer's eventfd
  int rx_bell; // ours
  shm_stream(ring* tx, ring* rx, int tx_bell, int rx_bell)
    : tx(tx), rx(rx), tx_bell(tx_bell), rx_bell(rx_bell) {
  }
  static void ring_bell(int fd) {
    uint64_t one = 1;
    if (::write(fd, &one, 8) < 0) {
    }
  }
  static void wait_bell(int fd) {
    uint64_t v;
    if (::read(fd, &v, 8) < 0) {
    }
  }
  // Spins 20 us (yielding), then sleeps on `bell` until `ready()`.
  template <class Ready>
  static void await(Ready ready, std::atomic<uint32_t>& flag, int bell) {
    auto deadline = now_ns() + 20000;
    while (!ready()) {
      if (now_ns() < deadline) {
        sched_yield();
        continue;
      }
      flag.store(1);
      if (!ready())
        wait_bell(bell);
      flag.store(0);
    }
  }
  void write_all(const char* p, size_t n) override {
    while (n > 0) {
      auto t = tx->tail.load(std::memory_order_relaxed);
      await([&] { return t - tx->head.load() < ring_capacity; },
            tx->writer_waiting, rx_bell);
      auto room = ring_capacity - (t - tx->head.load());
      auto k = std::min(room, n);
      auto pos = t % ring_capacity;
      auto first = std::min(k, ring_capacity - pos);
      std::memcpy(tx->data + pos, p, first);
      std::memcpy(tx->data, p + first, k - first);
      tx->tail.store(t + k);
      if (tx->reader_sleeping.load())
        ring_bell(tx_bell);
      p += k;
      n -= k;
    }
  }
  void read_all(char* p, size_t n) override {
    while (n > 0) {
      auto h = rx->head.load(std::memory_order_relaxed);
      await([&] { return rx->tail.load() != h; }, rx->reader_sleeping, rx_bell);
      auto avail = rx->tail.load() - h;
      auto k = std::min<size_t>(avail, n);
      auto pos = h % ring_capacity;
      auto first = std::min(k, ring_capacity - pos);
      std::memcpy(p, rx->data + pos, first);
      std::memcpy(p + first, rx->data, k - first);
      rx->head.store(h + k);
      if (rx->writer_waiting.load())
        ring_bell(tx_bell);
      p += k;
      n -= k;
    }
  }
};

// -- the exchange ------------------------------------------------------------------

void server(stream& s, const std::string& mode, size_t size, size_t count,
            int report) {
  std::vector<char> buf(size);
  if (mode == "rtt") {
    for (size_t i = 0; i < count; ++i) {
      s.read_all(buf.data(), size);
      s.write_all(buf.data(), size);
    }
  } else {
    s.read_all(buf.data(), size);
    auto first = now_ns();
    for (size_t i = 1; i < count; ++i)
      s.read_all(buf.data(), size);
    int64_t elapsed = now_ns() - first;
    if (::write(report, &elapsed, sizeof(elapsed)) < 0) {
    }
  }
}

void client(stream& s, const std::string& transport, const std::string& mode,
            size_t size, size_t count, int report) {
  std::vector<char> buf(size, 'x');
  if (mode == "rtt") {
    std::vector<double> rtts;
    rtts.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      auto t0 = now_ns();
      s.write_all(buf.data(), size);
      s.read_all(buf.data(), size);
      rtts.push_back(static_cast<double>(now_ns() - t0) / 1000.0);
    }
    bench::print_rtt("raw", transport, size, std::move(rtts));
  } else {
    for (size_t i = 0; i < count; ++i)
      s.write_all(buf.data(), size);
    int64_t elapsed = 0;
    if (::read(report, &elapsed, sizeof(elapsed)) != sizeof(elapsed))
      die("read report");
    bench::print_throughput("raw", transport, size, count, elapsed);
  }
}

} // namespace

// The reference for large messages: copying the payload twice in one
// process (into a buffer and out of it again, as a message's bytes are
// at best copied once by the sender and once by the receiver). Buffers are
// allocated and touched once, before timing.
int copy_twice(size_t size, size_t count, int cpu) {
  pin(cpu);
  std::vector<char> src(size, 'x');
  std::vector<char> mid(size, 0);
  std::vector<char> dst(size, 0);
  std::vector<double> us;
  us.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    src[i % size] = static_cast<char>(i);
    auto start = std::chrono::steady_clock::now();
    std::memcpy(mid.data(), src.data(), size);
    std::memcpy(dst.data(), mid.data(), size);
    us.push_back(std::chrono::duration<double, std::micro>(
                   std::chrono::steady_clock::now() - start)
                   .count());
    if (dst[i % size] != src[i % size])
      die("copy");
  }
  bench::print_rtt("raw", "memcpy_twice", size, std::move(us));
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: raw_bench uds|tcp|shm|mq rtt|throughput "
                         "[--size B] [--count N] [--cpus S,C]\n");
    return 2;
  }
  std::string transport = argv[1];
  std::string mode = argv[2];
  bench::options opt;
  if (!opt.parse(argc, argv, 3)) {
    std::fprintf(stderr, "raw_bench: bad option\n");
    return 2;
  }
  auto size = opt.size;
  auto count = opt.count;
  auto server_cpu = opt.server_cpu;
  auto client_cpu = opt.client_cpu;
  if (transport == "memcpy")
    return copy_twice(size, count, client_cpu);
  int report[2];
  if (::pipe(report) != 0)
    die("pipe");
  int server_fd = -1;
  int client_fd = -1;
  ring* rings = nullptr;
  int bells[2] = {-1, -1};
  int queues[2] = {-1, -1}; // mq: client -> server, server -> client
  int listener = -1;
  sockaddr_in sa{};
  if (transport == "uds") {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
      die("socketpair");
    server_fd = sv[0];
    client_fd = sv[1];
  } else if (transport == "tcp") {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0
        || ::listen(listener, 1) != 0
        || ::getsockname(listener, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
      die("tcp listen");
  } else if (transport == "shm") {
    auto* mem = ::mmap(nullptr, 2 * sizeof(ring), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
      die("mmap");
    rings = new (mem) ring[2];
    bells[0] = ::eventfd(0, 0); // the server's
    bells[1] = ::eventfd(0, 0); // the client's
  } else if (transport == "mq") {
    mq_attr attr{};
    attr.mq_maxmsg = 10;
    attr.mq_msgsize = mq_stream::message_size;
    for (int i = 0; i < 2; ++i) {
      auto name = "/raw-bench-" + std::to_string(::getpid()) + "-"
                  + std::to_string(i);
      queues[i] = ::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600,
                            &attr);
      if (queues[i] < 0)
        die("mq_open");
      ::mq_unlink(name.c_str()); // the descriptors keep it; fork shares them
    }
  } else {
    std::fprintf(stderr, "raw_bench: unknown transport %s\n", transport.c_str());
    return 2;
  }
  auto pid = ::fork();
  if (pid < 0)
    die("fork");
  int one = 1;
  if (pid == 0) {
    pin(server_cpu);
    if (transport == "tcp") {
      server_fd = ::accept(listener, nullptr, nullptr);
      ::setsockopt(server_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (rings != nullptr) {
      shm_stream s{&rings[1], &rings[0], bells[1], bells[0]};
      server(s, mode, size, count, report[1]);
    } else if (queues[0] >= 0) {
      mq_stream s{queues[1], queues[0]};
      server(s, mode, size, count, report[1]);
    } else {
      socket_stream s{server_fd};
      server(s, mode, size, count, report[1]);
    }
    ::_exit(0);
  }
  pin(client_cpu);
  if (transport == "tcp") {
    client_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(client_fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
      die("connect");
    ::setsockopt(client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  if (rings != nullptr) {
    shm_stream s{&rings[0], &rings[1], bells[0], bells[1]};
    client(s, transport, mode, size, count, report[0]);
  } else if (queues[0] >= 0) {
    mq_stream s{queues[0], queues[1]};
    client(s, transport, mode, size, count, report[0]);
  } else {
    socket_stream s{client_fd};
    client(s, transport, mode, size, count, report[0]);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
