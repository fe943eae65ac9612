#pragma once

// Every transport the conformance suite and the node-level bad-input suite
// run against. A new transport joins both with one entry in
// all_transport_cases().

#include <functional>
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
  };
}

} // namespace relay::test
