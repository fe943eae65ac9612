#pragma once

// Every transport the conformance suite and the node-level bad-input suite
// run against. A new transport joins both with one entry in
// all_transport_cases().

#include <poll.h>
#include <sys/epoll.h>

#include <functional>
#include <ostream>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "common/socket_util.hpp"
#include "relay/transport.hpp"
#include "tcp/tcp_address.hpp"
#include "tcp/tcp_auth.hpp"
#include "tcp/tcp_socket.hpp"
#include "tcp/tcp_transport.hpp"
#include "shm/shm_channel.hpp"
#include "shm/shm_setup.hpp"
#include "shm/shm_transport.hpp"
#include "uds/uds_connector.hpp"
#include "uds/uds_address.hpp"
#include "uds/uds_transport.hpp"

namespace relay::test {

/// The secret every authenticating transport uses in tests.
inline const std::string test_secret = "relay-test-secret-0123456789abcdef";

struct transport_case {
  /// The URI scheme, which also names the test instance, e.g. "uds".
  std::string name;
  /// Makes the transport on reactor `io`.
  std::function<std::unique_ptr<transport>(std::shared_ptr<reactor> io,
                                           transport_options options)>
    make;
  /// A fresh URI to listen on; `dir` is a private temporary directory and
  /// `tag` is unique within the test.
  std::function<std::string(const std::string& dir, const std::string& tag)>
    listen_uri;
  /// A plain blocking socket connected to the listener at `uri` (its
  /// acceptor's uri()), past any transport handshake: what is written next
  /// reaches the frame layer. Empty on failure.
  std::function<unique_fd(const std::string& uri)> raw_connect;
  /// Options the transport needs in tests (e.g. the secret).
  std::function<void(transport_options&)> configure = [](transport_options&) {};
};

/// GoogleTest prints a case by its name.
inline void PrintTo(const transport_case& c, std::ostream* os) {
  *os << c.name;
}

inline unique_fd raw_uds_connect(const std::string& uri) {
  auto ep = endpoint::parse(uri);
  if (!ep)
    return unique_fd{};
  auto addr = uds_address::parse(*ep);
  if (!addr)
    return unique_fd{};
  unique_fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_un sa;
  auto len = addr->to_sockaddr(sa);
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) < 0)
    return unique_fd{};
  return fd;
}

/// Connects to a tcp listener and authenticates with `secret` (the client's
/// side of tcp_auth), then turns the socket blocking.
inline unique_fd raw_tcp_connect(const std::string& uri,
                                 const std::string& secret = test_secret) {
  auto ep = endpoint::parse(uri);
  if (!ep)
    return unique_fd{};
  auto addr = tcp_address::parse(*ep);
  if (!addr)
    return unique_fd{};
  auto targets = resolve(*addr, false, errc::connect_failed);
  if (!targets)
    return unique_fd{};
  auto& target = targets->front();
  unique_fd fd{::socket(target.family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (!fd || ::connect(fd.get(), target.get(), target.length) < 0)
    return unique_fd{};
  tcp_auth::handshake hs{tcp_auth::role::client, secret, uri};
  if (run_handshake(fd.get(), hs,
                    std::chrono::steady_clock::now() + std::chrono::seconds{10},
                    uri))
    return unique_fd{};
  return fd;
}

/// Connects to an shm listener like a real client (region, doorbells), then
/// returns one end of a socket pair; a pump thread moves bytes between the
/// other end and the rings. Closing the returned end closes the connection;
/// the listener closing it closes the returned end.
inline unique_fd raw_shm_connect(const std::string& uri) {
  auto ep = endpoint::parse(uri);
  if (!ep)
    return unique_fd{};
  auto addr = uds_address::parse(endpoint{"uds", ep->rest, uri});
  if (!addr)
    return unique_fd{};
  auto sock = uds_connect_socket(*addr, transport_options{});
  if (!sock)
    return unique_fd{};
  auto setup = shm_setup::run_client(
    sock->fd.get(), 64 * 1024,
    std::chrono::steady_clock::now() + std::chrono::seconds{10}, uri);
  if (!setup)
    return unique_fd{};
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return unique_fd{};
  unique_fd mine{sv[0]};
  auto chan = std::make_shared<shm_channel>(
    std::move(setup->map), setup->capacity, 1, 0, std::move(sock->fd),
    std::chrono::nanoseconds{0});
  std::thread{[chan, theirs = unique_fd{sv[1]}]() mutable {
    std::vector<char> pending; // from the test, not yet in the ring
    char buf[65536];
    for (;;) {
      pollfd p[2] = {{theirs.get(), POLLIN, 0}, {chan->fd(), POLLIN, 0}};
      ::poll(p, 2, 1000);
      if (p[1].revents != 0) {
        chan->on_ready(EPOLLIN);
        for (;;) { // ring -> test
          auto n = chan->read(buf, sizeof(buf));
          if (n > 0) {
            for (ssize_t off = 0; off < n;) {
              auto w = ::send(theirs.get(), buf + off, n - off, MSG_NOSIGNAL);
              if (w <= 0)
                return;
              off += w;
            }
            continue;
          }
          if (n == 0 || (errno != EAGAIN && errno != EINTR))
            return; // the listener closed: so does the test's end
          break;
        }
      }
      if (p[0].revents != 0) { // test -> ring
        auto n = ::recv(theirs.get(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          // The test closed its end: flush what is left, then hang up.
          while (!pending.empty()) {
            iovec iov{pending.data(), pending.size()};
            auto w = chan->write(&iov, 1);
            if (w < 0)
              return;
            pending.erase(pending.begin(), pending.begin() + w);
          }
          return;
        }
        if (n > 0)
          pending.insert(pending.end(), buf, buf + n);
      }
      while (!pending.empty()) {
        iovec iov{pending.data(), pending.size()};
        auto w = chan->write(&iov, 1);
        if (w <= 0)
          break; // full: the listener rings when it made room
        pending.erase(pending.begin(), pending.begin() + w);
      }
    }
  }}.detach();
  return mine;
}

template <class Transport>
std::unique_ptr<transport> make_transport(std::shared_ptr<reactor> io,
                                          transport_options options) {
  return std::make_unique<Transport>(std::move(io), std::move(options));
}

inline std::vector<transport_case> all_transport_cases() {
  return {
    {"uds", make_transport<uds_transport>,
     [](const std::string& dir, const std::string& tag) {
       return "uds://" + dir + "/" + tag + ".sock";
     },
     raw_uds_connect},
    {"tcp", make_transport<tcp_transport>,
     [](const std::string&, const std::string&) {
       return std::string{"tcp://127.0.0.1:0"};
     },
     [](const std::string& uri) { return raw_tcp_connect(uri); },
     [](transport_options& opts) { opts.secret = test_secret; }},
    {"shm", make_transport<shm_transport>,
     [](const std::string& dir, const std::string& tag) {
       return "shm://" + dir + "/" + tag + ".sock";
     },
     raw_shm_connect},
  };
}

} // namespace relay::test
