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

#include <caf/settings.hpp>

#include "common/byte_channel.hpp"
#include "common/socket_util.hpp"
#include "relay/transport.hpp"
#include "tcp/tcp_address.hpp"
#include "tcp/tcp_auth.hpp"
#include "tcp/tcp_socket.hpp"
#include "tcp/tcp_transport.hpp"
#include "mq/mq_transport.hpp"
#include "shm/shm_channel.hpp"
#include "shm/shm_setup.hpp"
#include "shm/shm_transport.hpp"
#include "test_support.hpp"
#include "tls/tls_layer.hpp"
#include "tls/tls_transport.hpp"
#include "tls_certs.hpp"
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
  /// Settings the transport needs in a node's configuration (e.g.
  /// relay.tls.* naming certificates): node-level suites apply them to
  /// node_config::content.
  std::function<void(caf::settings&)> node_settings = [](caf::settings&) {};
};

/// The certificates of every tls:// test in this process: one CA and one
/// certificate for "node.relay.test", shared by all nodes, in a temporary
/// directory removed at exit.
inline const tls_files& test_tls_files() {
  static temp_dir dir;
  static tls_files files = test_ca{dir.path(), "test"}.issue("node.relay.test");
  return files;
}

/// relay.tls.* naming test_tls_files().
inline void put_test_tls_settings(caf::settings& out) {
  const auto& f = test_tls_files();
  caf::put(out, "relay.tls.ca-file", f.ca_file);
  caf::put(out, "relay.tls.cert-file", f.cert_file);
  caf::put(out, "relay.tls.key-file", f.key_file);
}

/// test_tls_files() as settings, for transport_options::settings.
inline const caf::settings* test_tls_settings() {
  static caf::settings settings = [] {
    caf::settings result;
    put_test_tls_settings(result);
    return result;
  }();
  return &settings;
}

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

/// Returns one end of a socket pair; a pump thread moves bytes between the
/// other end and `chan` (as a real client's channel: shm rings, a TLS
/// session), so that a test can read and write raw frames on a plain
/// socket. Closing the returned end closes the channel; the listener
/// closing the channel closes the returned end. `watch_writable`: wait for
/// the channel's descriptor to become writable while bytes wait (a socket;
/// not shm, whose doorbell rings when the peer made room).
inline unique_fd pump_channel(std::shared_ptr<byte_channel> chan,
                              bool watch_writable = false) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return unique_fd{};
  unique_fd mine{sv[0]};
  std::thread{[chan, watch_writable, theirs = unique_fd{sv[1]}]() mutable {
    std::vector<char> pending; // from the test, not yet in the channel
    char buf[65536];
    for (;;) {
      // A channel over several descriptors (mq) watches for room through
      // its own descriptor; a socket through POLLOUT.
      auto watched = chan->watch(pending.empty() ? uint32_t{EPOLLIN}
                                                 : uint32_t{EPOLLIN | EPOLLOUT});
      short chan_events = POLLIN;
      if (watch_writable && (watched & EPOLLOUT) != 0)
        chan_events |= POLLOUT;
      pollfd p[2] = {{theirs.get(), POLLIN, 0}, {chan->fd(), chan_events, 0}};
      ::poll(p, 2, 1000);
      if ((p[1].revents & ~POLLOUT) != 0) {
        chan->on_ready(EPOLLIN);
        for (;;) { // channel -> test
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
      if (p[0].revents != 0) { // test -> channel
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
          break; // full: wait until there is room
        pending.erase(pending.begin(), pending.begin() + w);
      }
    }
  }}.detach();
  return mine;
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
  return pump_channel(std::make_shared<shm_channel>(
    std::move(setup->map), setup->capacity, 1, 0, std::move(sock->fd),
    std::chrono::nanoseconds{0}));
}

/// Connects to a tls listener like a real client (TLS handshake, the proof
/// of `secret` bound to the session), then returns one end of a socket pair
/// whose bytes a pump thread moves through the TLS session (see
/// pump_channel).
inline unique_fd raw_tls_connect(const std::string& uri,
                                 const std::string& secret = test_secret) {
  auto ep = endpoint::parse(uri);
  if (!ep)
    return unique_fd{};
  auto addr = tcp_address::parse(*ep, "tls");
  if (!addr)
    return unique_fd{};
  auto targets = resolve(*addr, false, errc::connect_failed);
  if (!targets)
    return unique_fd{};
  auto& target = targets->front();
  unique_fd fd{::socket(target.family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (!fd || ::connect(fd.get(), target.get(), target.length) < 0)
    return unique_fd{};
  if (set_nonblocking(fd.get(), true, errc::connect_failed, uri))
    return unique_fd{};
  transport_options options;
  options.secret = secret;
  options.settings = test_tls_settings();
  tls_layer layer{options};
  auto chan = layer.connect(std::move(fd),
                            std::chrono::steady_clock::now()
                              + std::chrono::seconds{10},
                            uri);
  if (!chan)
    return unique_fd{};
  return pump_channel(std::shared_ptr<byte_channel>{std::move(*chan)}, true);
}

/// relay.mq.* for the shared suites: 256-byte messages, 10 per queue.
/// Each queue of the default size (10 x 8 KiB) counts about 81 KiB against
/// the user's RLIMIT_MSGQUEUE (800 KiB by default, and not raisable without
/// CAP_SYS_RESOURCE), so the 64 connections of the conformance suite could
/// not hold them; small messages also make every frame travel in many
/// pieces. mq_transport_test covers the default sizes.
inline void put_mq_test_settings(caf::settings& out) {
  caf::put(out, "relay.mq.message-size", size_t{256});
  caf::put(out, "relay.mq.max-messages", size_t{10});
}

inline const caf::settings* mq_test_settings() {
  static caf::settings settings = [] {
    caf::settings result;
    put_mq_test_settings(result);
    return result;
  }();
  return &settings;
}

/// An mq:// name unique to this test: queue names cannot hold '/'.
inline std::string mq_test_uri(const std::string& dir, const std::string& tag) {
  return "mq:///" + dir.substr(dir.rfind('/') + 1) + "-" + tag;
}

/// Connects to an mq listener like a real client (rendezvous, queue pair),
/// then returns one end of a socket pair pumped through the queues (see
/// pump_channel).
inline unique_fd raw_mq_connect(const std::string& uri) {
  auto ep = endpoint::parse(uri);
  if (!ep)
    return unique_fd{};
  auto addr = mq::address::parse(*ep);
  if (!addr)
    return unique_fd{};
  transport_options options;
  options.settings = mq_test_settings();
  auto settings = mq_transport::settings::read(options);
  if (!settings)
    return unique_fd{};
  auto client = mq_connect_channel(*addr, settings->geometry, options, {});
  if (!client)
    return unique_fd{};
  return pump_channel(std::shared_ptr<byte_channel>{std::move(client->channel)});
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
    {"tls", make_transport<tls_transport>,
     [](const std::string&, const std::string&) {
       return std::string{"tls://127.0.0.1:0"};
     },
     [](const std::string& uri) { return raw_tls_connect(uri); },
     [](transport_options& opts) {
       opts.secret = test_secret;
       opts.settings = test_tls_settings();
     },
     put_test_tls_settings},
    {"shm", make_transport<shm_transport>,
     [](const std::string& dir, const std::string& tag) {
       return "shm://" + dir + "/" + tag + ".sock";
     },
     raw_shm_connect},
    {"mq", make_transport<mq_transport>, mq_test_uri, raw_mq_connect,
     [](transport_options& opts) { opts.settings = mq_test_settings(); },
     put_mq_test_settings},
  };
}

} // namespace relay::test
