#pragma once

#include <memory>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/socket_util.hpp"
#include "relay/transport.hpp"
#include "uds/uds_address.hpp"

namespace relay {

/// Connects to the listener at `addr`, blocking the caller at most
/// `options.connect_timeout`, then checks the listener's SO_PEERCRED uid
/// (same uid as ours unless options.allow_other_uids). Returns a
/// stream_connection on `io`, not yet started.
///
/// Thread-safe. Errors, all naming the URI: errc::connect_failed ("no such
/// socket", "nobody is listening", "permission denied", other errno text),
/// errc::connect_timeout (the listener's backlog stayed full),
/// errc::peer_rejected (the listener runs under another uid).
caf::expected<connection_ptr> uds_connect(const std::shared_ptr<reactor>& io,
                                          const uds_address& addr,
                                          const transport_options& options);

/// A connected uds socket (non-blocking) and the listener's description.
struct uds_socket {
  unique_fd fd;
  std::string peer;
};

/// The socket part of uds_connect: connects and checks the listener's uid,
/// with the same bound and errors.
caf::expected<uds_socket> uds_connect_socket(const uds_address& addr,
                                             const transport_options& options);

} // namespace relay
