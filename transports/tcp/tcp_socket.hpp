#pragma once

#include <chrono>
#include <string>

#include <caf/error.hpp>

#include "common/socket_util.hpp"
#include "relay/transport.hpp"
#include "tcp/tcp_auth.hpp"

namespace relay {

/// Keep-alive probing of idle TCP connections: the first probe after
/// keepalive_idle, then every keepalive_interval, dead after keepalive_count
/// unanswered probes (about a minute for a peer host that vanished).
constexpr int keepalive_idle_s = 30;
constexpr int keepalive_interval_s = 10;
constexpr int keepalive_count = 3;

/// Sets TCP_NODELAY and keep-alive on connected socket `fd`. Errors name
/// `who` and carry `code`.
caf::error set_tcp_options(int fd, errc code, const std::string& who);

/// The option that runs tcp without authentication (declared by
/// tcp_transport::declare_options; false by default).
constexpr const char* tcp_insecure_key = "relay.tcp.insecure";

/// Whether `options.settings` sets relay.tcp.insecure.
bool tcp_insecure(const transport_options& options);

/// The secret a tcp endpoint uses, or an error if there is none and
/// relay.tcp.insecure is off (errc::insecure_configuration, naming `uri`).
/// Empty result: run without authentication.
caf::expected<std::string> tcp_secret(const transport_options& options,
                                      const std::string& uri);

/// Runs `hs` on blocking-free socket `fd` with poll(), giving up at
/// `deadline`. On failure, the handshake's last words (a rejection) are sent
/// first. Errors: the handshake's error, errc::handshake_timeout, or
/// errc::connection_closed, all naming `who`.
caf::error run_handshake(int fd, tcp_auth::handshake& hs,
                         std::chrono::steady_clock::time_point deadline,
                         const std::string& who);

/// Sends as much of `hs.output()` as the socket takes now, without
/// blocking, and erases it. Returns errno of a broken socket, or 0.
int send_output(int fd, tcp_auth::handshake& hs);

} // namespace relay
