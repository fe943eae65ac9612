#pragma once

// The accept loop shared by the socket listeners (uds, tcp).

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/socket_util.hpp"
#include "relay/transport.hpp"

namespace relay {

/// Connections accepted per readiness event before other fds get a turn.
constexpr int max_accepts_per_event = 64;

/// How long accepting pauses after accept4 fails for lack of resources
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM), so that the loop does not spin.
constexpr std::chrono::milliseconds accept_retry_delay{100};

/// Accepts up to max_accepts_per_event pending connections on the listening
/// socket `fd` (reactor registration `token`), passing each, non-blocking and
/// close-on-exec, to `on_conn`. Stops early once `stopped` is set. Transient
/// failures (the peer gave up) are skipped; a lack of resources is logged
/// and pauses accepting for accept_retry_delay. Reactor thread only.
void accept_pending(const std::shared_ptr<reactor>& io, int fd, reactor::token token,
                    const std::atomic<bool>& stopped, const std::string& uri,
                    const std::function<void(unique_fd)>& on_conn);

/// For transports whose one connection exists before listen (fd, pipe):
/// hands `conn` to `on_accept` on the reactor thread (not from inside
/// listen(), where the node may hold locks) and returns an acceptor with
/// nothing to stop, whose uri() is `uri`. Errors: invalid_argument for an
/// empty callback.
caf::expected<std::unique_ptr<acceptor>>
accept_adopted(const std::shared_ptr<reactor>& io, std::string uri,
               connection_ptr conn, accept_callback on_accept);

} // namespace relay
