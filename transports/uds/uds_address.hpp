#pragma once

#include <cstddef>
#include <string>

#include <sys/socket.h>
#include <sys/un.h>

#include <caf/expected.hpp>

#include "relay/transport.hpp"

namespace relay {

/// A Unix domain socket address: a filesystem path (`uds:///run/app/a.sock`)
/// or a name in Linux's abstract namespace (`uds:@name`). No host part, no
/// percent-decoding: the path is taken byte for byte.
struct uds_address {
  /// Longest path or abstract name that fits sockaddr_un::sun_path (a path
  /// keeps one byte for its terminating NUL, an abstract name for its
  /// leading NUL).
  static constexpr size_t max_length = sizeof(sockaddr_un::sun_path) - 1;

  /// True for the abstract namespace: no file, gone with the socket.
  bool abstract = false;

  /// The absolute path, or the abstract name without its '@'.
  std::string name;

  /// Parses `ep.rest`: "///abs/path" or "@name". Errors (errc::invalid_uri,
  /// naming ep.text): another scheme, a host part, an empty, relative or
  /// directory path, an empty name, a NUL byte, longer than max_length.
  /// Thread-safe.
  static caf::expected<uds_address> parse(const endpoint& ep);

  /// The canonical URI: "uds:///abs/path" or "uds:@name".
  std::string uri() const;

  /// Fills `out` and returns the address length to pass to bind/connect.
  socklen_t to_sockaddr(sockaddr_un& out) const noexcept;
};

} // namespace relay
