#pragma once

#include <string>

#include <sys/types.h>

#include <caf/expected.hpp>

#include "relay/error.hpp"
#include "relay/transport.hpp"

namespace relay {

/// Credentials of the process at the other end of a Unix domain socket, as
/// the kernel reports them (SO_PEERCRED): for an accepted socket the
/// connecting process, for a connected one the process that called listen().
struct uds_peer {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;

  /// Reads the credentials of `fd`'s peer. Errors carry `code` and name
  /// `uri`. Thread-safe.
  static caf::expected<uds_peer> of(int fd, errc code, const std::string& uri);

  /// "<uri> (pid 42, uid 1000)", the peer_name() of uds connections.
  std::string describe(const std::string& uri) const;

  /// Applies the uid rule (same effective uid as this process unless
  /// `options.allow_other_uids`). Returns an empty string if the peer is
  /// allowed, else why not ("uid differs from 1000"). Thread-safe.
  std::string check_uid(const transport_options& options) const;
};

} // namespace relay
