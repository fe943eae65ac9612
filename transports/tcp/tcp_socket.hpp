#pragma once

#include <chrono>
#include <string>

#include <sys/types.h>

#include <caf/error.hpp>

#include "common/setup_session.hpp"
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
/// (An array, not a pointer: CAF's string_view takes a pointer only when
/// CAF is compiled by gcc, an array with either compiler.)
inline constexpr char tcp_insecure_key[] = "relay.tcp.insecure";

/// Whether `options.settings` sets relay.tcp.insecure.
bool tcp_insecure(const transport_options& options);

/// The secret a tcp endpoint uses, or an error if there is none and
/// relay.tcp.insecure is off (errc::insecure_configuration, naming `uri`).
/// Empty result: run without authentication.
caf::expected<std::string> tcp_secret(const transport_options& options,
                                      const std::string& uri);

/// Non-blocking byte I/O that the authentication exchange runs over: the
/// socket itself (tcp://) or a TLS session on it (tls://).
///
/// Thread rules: one thread at a time.
class handshake_io {
public:
  virtual ~handshake_io();

  /// The socket, for poll().
  virtual int fd() const noexcept = 0;

  /// Like ::send with MSG_DONTWAIT | MSG_NOSIGNAL: bytes sent, or -1 with
  /// errno (EAGAIN: no room now).
  virtual ssize_t send(const uint8_t* data, size_t size) = 0;

  /// Like ::recv with MSG_DONTWAIT: bytes read, 0 at the end of the stream,
  /// or -1 with errno (EAGAIN: nothing now). May return bytes that poll()
  /// on fd() does not report (taken from the socket earlier), so callers
  /// read before they wait.
  virtual ssize_t recv(uint8_t* data, size_t size) = 0;
};

/// handshake_io on a plain socket (not owned).
class socket_handshake_io : public handshake_io {
public:
  explicit socket_handshake_io(int fd) : fd_(fd) {
    // nop
  }

  int fd() const noexcept override {
    return fd_;
  }

  ssize_t send(const uint8_t* data, size_t size) override;

  ssize_t recv(uint8_t* data, size_t size) override;

private:
  int fd_;
};

/// Runs `hs` over `io` (a non-blocking socket), waiting with poll(),
/// giving up at `deadline`. On failure, the handshake's last words (a
/// rejection) are sent first. Errors: the handshake's error,
/// errc::handshake_timeout, or errc::connection_closed, all naming `who`.
caf::error run_handshake(handshake_io& io, tcp_auth::handshake& hs,
                         std::chrono::steady_clock::time_point deadline,
                         const std::string& who);

/// The same on socket `fd`.
caf::error run_handshake(int fd, tcp_auth::handshake& hs,
                         std::chrono::steady_clock::time_point deadline,
                         const std::string& who);

/// Sends as much of `hs.output()` as `io` takes now, without blocking, and
/// erases it. Returns errno of a broken connection, or 0.
int send_output(handshake_io& io, tcp_auth::handshake& hs);

/// One step of the server's side of `hs` over `io`, for setup_sessions:
/// sends and reads what it can without blocking. `peer` names the peer in
/// errors.
setup_status auth_step(handshake_io& io, tcp_auth::handshake& hs,
                       const std::string& peer);

} // namespace relay
