#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include <caf/expected.hpp>

#include "relay/error.hpp"
#include "relay/transport.hpp"

namespace relay {

/// A TCP endpoint: `tcp://host:port`, `tcp://[v6-literal]:port` or
/// `tcp://:port` (no host: the loopback address). Host names are resolved
/// with getaddrinfo when used, not when parsed.
struct tcp_address {
  /// "tcp", or "tls" for the TLS transport (same address syntax).
  std::string scheme = "tcp";
  /// The host as written, without brackets; empty for "no host given".
  std::string host;
  uint16_t port = 0;

  /// Parses `ep.rest` ("//host:port"). Errors (errc::invalid_uri, naming
  /// ep.text): a scheme other than `scheme`, no "//", a missing or
  /// non-numeric port or one above 65535, an unclosed '[', a path or query
  /// after the port.
  static caf::expected<tcp_address> parse(const endpoint& ep,
                                          const std::string& scheme = "tcp");

  /// "<scheme>://host:port", brackets around an IPv6 literal.
  std::string uri() const;
};

/// One resolved socket address.
struct tcp_sockaddr {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_UNSPEC;

  const sockaddr* get() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage);
  }

  /// "127.0.0.1:4000" or "[::1]:4000".
  std::string to_string() const;

  /// The address of the local or remote end of socket `fd`.
  static tcp_sockaddr local_of(int fd);
  static tcp_sockaddr peer_of(int fd);
};

/// Resolves `addr` for listening (`passive`: no host means 127.0.0.1) or for
/// connecting (no host means 127.0.0.1 too). Errors: errc `code` naming
/// `addr.uri()`, "host not found: <reason>".
caf::expected<std::vector<tcp_sockaddr>> resolve(const tcp_address& addr,
                                                 bool passive, errc code);

} // namespace relay
