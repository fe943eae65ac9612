#pragma once

// A fault-injection TCP proxy for cluster tests, on loopback only. Each
// node gets a proxy port (what it advertises) that forwards to its real
// port; each node dials from a source address of its own (127.0.0.x, see
// relay.tcp.source-address), so the proxy knows which two nodes every
// connection joins, whoever dialed. Per direction between two nodes the
// test chooses: pass, delay, blackhole (bytes stop; sockets stay open, as
// in a real partition) or cut (connections closed, new ones refused). One
// thread, epoll, non-blocking sockets; every socket closed on destruction.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace relay::test {

class fault_proxy {
public:
  enum class mode { pass, delay, blackhole, cut };

  fault_proxy() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd_ < 0 || wake_ < 0)
      throw std::runtime_error("fault_proxy: epoll/eventfd failed");
    add_fd(wake_, EPOLLIN, nullptr);
    thread_ = std::thread([this] { run(); });
  }

  ~fault_proxy() {
    stop_ = true;
    poke();
    thread_.join();
    for (auto& [fd, l] : listeners_)
      ::close(fd);
    for (auto& c : conns_) {
      ::close(c->fd[0]);
      ::close(c->fd[1]);
    }
    ::close(wake_);
    ::close(epfd_);
  }

  fault_proxy(const fault_proxy&) = delete;
  fault_proxy& operator=(const fault_proxy&) = delete;

  /// Registers node `name`, which dials from `source_ip`; returns the
  /// proxy port its peers dial. Connections to it are refused until
  /// set_target.
  uint16_t add_node(const std::string& name, const std::string& source_ip) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0
        || ::listen(fd, 128) != 0)
      throw std::runtime_error("fault_proxy: cannot listen");
    socklen_t len = sizeof(sa);
    getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    std::lock_guard<std::mutex> guard{mtx_};
    nodes_by_ip_[source_ip] = name;
    auto l = std::make_unique<listener>();
    l->fd = fd;
    l->node = name;
    add_fd(fd, EPOLLIN, l.get());
    listeners_.emplace(fd, std::move(l));
    return ntohs(sa.sin_port);
  }

  /// Where connections to `name` go (its real port on 127.0.0.1).
  void set_target(const std::string& name, uint16_t port) {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [fd, l] : listeners_)
      if (l->node == name)
        l->target_port = port;
  }

  /// Sets how bytes from node `from` to node `to` travel.
  void set(const std::string& from, const std::string& to, mode m,
           std::chrono::milliseconds delay = std::chrono::milliseconds{0}) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      rules_[{from, to}] = rule{m, delay};
    }
    poke();
  }

  /// Partitions `side` from every other node with `m` both ways.
  void partition(const std::set<std::string>& side,
                 const std::set<std::string>& rest, mode m = mode::blackhole) {
    for (auto& a : side)
      for (auto& b : rest) {
        set(a, b, m);
        set(b, a, m);
      }
  }

  /// Every direction passes again.
  void heal() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      rules_.clear();
    }
    poke();
  }

  /// Connections accepted so far (for tests of the proxy itself).
  size_t accepted() const {
    return accepted_.load();
  }

private:
  struct rule {
    mode m = mode::pass;
    std::chrono::milliseconds delay{0};
  };

  struct listener {
    int fd = -1;
    std::string node;
    uint16_t target_port = 0;
  };

  struct chunk {
    std::chrono::steady_clock::time_point due;
    std::string bytes;
  };

  // One proxied connection: fd[0] is the dialer's side, fd[1] the target's.
  // dir d moves bytes from fd[d] to fd[1 - d].
  struct conn {
    int fd[2] = {-1, -1};
    std::string node[2]; // node at each side
    std::deque<chunk> pending[2];
    size_t pending_bytes[2] = {0, 0};
    bool connected = false; // the target side's connect finished
    bool eof[2] = {false, false};  // fd[d] sent FIN (read returned 0)
    bool shut[2] = {false, false}; // that FIN was passed on to fd[1 - d]
    bool dead = false;
  };

  // What epoll tags point at.
  struct tag {
    conn* c = nullptr;
    int side = 0;
  };

  static constexpr size_t max_pending = 1 << 20;

  void poke() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof(one));
  }

  void add_fd(int fd, uint32_t events, void* ptr) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = ptr;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  }

  rule rule_for(const std::string& from, const std::string& to) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = rules_.find({from, to});
    return i == rules_.end() ? rule{} : i->second;
  }

  void run() {
    std::vector<epoll_event> events(64);
    while (!stop_) {
      auto n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()),
                          10);
      for (int i = 0; i < n; ++i) {
        auto ptr = events[i].data.ptr;
        if (ptr == nullptr) {
          uint64_t x;
          [[maybe_unused]] auto r = ::read(wake_, &x, sizeof(x));
          continue;
        }
        if (auto l = find_listener(ptr)) {
          accept_one(*l);
          continue;
        }
        auto t = static_cast<tag*>(ptr);
        if (!t->c->connected && t->side == 1)
          t->c->connected = true;
      }
      pump_all();
    }
  }

  listener* find_listener(void* ptr) {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [fd, l] : listeners_)
      if (l.get() == ptr)
        return l.get();
    return nullptr;
  }

  void accept_one(listener& l) {
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    int fd = accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    char ip[INET_ADDRSTRLEN] = {0};
    inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
    std::string from;
    uint16_t target;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      auto i = nodes_by_ip_.find(ip);
      from = i == nodes_by_ip_.end() ? std::string{"?"} + ip : i->second;
      target = l.target_port;
    }
    if (target == 0 || rule_for(from, l.node).m == mode::cut
        || rule_for(l.node, from).m == mode::cut) {
      ::close(fd);
      return;
    }
    int up = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(target);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (::connect(up, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0
        && errno != EINPROGRESS) {
      ::close(fd);
      ::close(up);
      return;
    }
    ++accepted_;
    if (getenv("PROXY_DEBUG"))
      fprintf(stderr, "PROXY accept %s -> %s\n", from.c_str(), l.node.c_str());
    auto c = std::make_unique<conn>();
    c->fd[0] = fd;
    c->fd[1] = up;
    c->node[0] = from;
    c->node[1] = l.node;
    auto t0 = std::make_unique<tag>(tag{c.get(), 0});
    auto t1 = std::make_unique<tag>(tag{c.get(), 1});
    add_fd(fd, EPOLLIN | EPOLLOUT | EPOLLET, t0.get());
    add_fd(up, EPOLLIN | EPOLLOUT | EPOLLET, t1.get());
    tags_.push_back(std::move(t0));
    tags_.push_back(std::move(t1));
    conns_.push_back(std::move(c));
  }

  // Moves what can move on every connection (level-triggered by polling:
  // the loop wakes at least every 10 ms, which is fine for tests).
  void pump_all() {
    auto now = std::chrono::steady_clock::now();
    for (auto& c : conns_) {
      if (c->dead)
        continue;
      for (int d = 0; d < 2 && !c->dead; ++d) {
        auto r = rule_for(c->node[d], c->node[1 - d]);
        if (r.m == mode::cut) {
          kill(*c);
          break;
        }
        if (r.m == mode::blackhole || !c->connected)
          continue;
        // Read what the source sent (bounded by what waits to be written).
        while (!c->eof[d] && c->pending_bytes[d] < max_pending) {
          char buf[65536];
          auto n = ::read(c->fd[d], buf, sizeof(buf));
          if (n == 0) {
            c->eof[d] = true; // passed on once what it sent before is out
            break;
          }
          if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            kill(*c);
            break;
          }
          if (n < 0)
            break;
          auto due = now + (r.m == mode::delay ? r.delay
                                               : std::chrono::milliseconds{0});
          c->pending[d].push_back(chunk{due, std::string(buf, n)});
          c->pending_bytes[d] += static_cast<size_t>(n);
        }
        if (c->dead)
          break;
        // Write what is due.
        auto& q = c->pending[d];
        while (!q.empty() && q.front().due <= now) {
          auto& front = q.front();
          auto n = ::send(c->fd[1 - d], front.bytes.data(), front.bytes.size(),
                          MSG_NOSIGNAL);
          if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
              kill(*c);
            break;
          }
          c->pending_bytes[d] -= static_cast<size_t>(n);
          if (static_cast<size_t>(n) < front.bytes.size()) {
            front.bytes.erase(0, static_cast<size_t>(n));
            break;
          }
          q.pop_front();
        }
        // A FIN travels behind the bytes it followed (a peer that writes a
        // verdict and closes must be heard), unlike a cut's RST.
        if (c->eof[d] && q.empty() && !c->shut[d]) {
          ::shutdown(c->fd[1 - d], SHUT_WR);
          c->shut[d] = true;
        }
      }
      if (!c->dead && c->shut[0] && c->shut[1])
        close_both(*c);
    }
  }

  // Both sides finished: an orderly close.
  void close_both(conn& c) {
    c.dead = true;
    for (int fd : c.fd) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
      ::close(fd);
    }
    c.fd[0] = c.fd[1] = -1;
  }

  void kill(conn& c) {
    if (c.dead)
      return;
    if (getenv("PROXY_DEBUG"))
      fprintf(stderr, "PROXY kill %s -> %s\n", c.node[0].c_str(), c.node[1].c_str());
    c.dead = true;
    // RST rather than FIN: a cut looks like a broken network.
    linger lg{1, 0};
    for (int fd : c.fd) {
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
      ::close(fd);
    }
    c.fd[0] = c.fd[1] = -1;
  }

  int epfd_ = -1;
  int wake_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> accepted_{0};
  std::thread thread_;
  std::mutex mtx_; // guards nodes_by_ip_, rules_, target ports
  std::map<std::string, std::string> nodes_by_ip_;
  std::map<std::pair<std::string, std::string>, rule> rules_;
  // Owned by the proxy thread after construction (listeners_ also written
  // by add_node under mtx_ before any connection to them exists).
  std::map<int, std::unique_ptr<listener>> listeners_;
  std::vector<std::unique_ptr<conn>> conns_;
  std::vector<std::unique_ptr<tag>> tags_;
};

} // namespace relay::test
