#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/socket_util.hpp"
#include "common/transport_log.hpp"
#include "relay/transport.hpp"
#include "uds/uds_address.hpp"

namespace relay {

/// Receives an accepted socket that passed the uid check, and the peer's
/// description (URI, pid, uid). Called on the reactor thread.
using uds_socket_callback = std::function<void(unique_fd fd, std::string peer)>;

/// A listening Unix domain socket: the relay::acceptor of uds_transport
/// (and the rendezvous of shm_transport).
///
/// Accepts on the reactor thread, checks each peer's SO_PEERCRED uid (peers
/// of another uid are closed and logged unless options.allow_other_uids),
/// and hands accepted sockets to the socket callback.
class uds_listener : public acceptor {
public:
  /// Backlog passed to listen(2).
  static constexpr int backlog = 128;

  /// Socket files are created with exactly these permission bits.
  static constexpr unsigned socket_file_mode = 0600;

  /// Binds `addr` and starts listening. For a path: an existing socket file
  /// nobody listens on is replaced; a live listener, or an existing file that
  /// is not a socket, is an error (never deleted). The socket file is created
  /// 0600. Thread-safe. Errors: errc::listen_failed naming the URI and the
  /// cause ("already in use by a live listener", "exists and is not a
  /// socket", errno text); errc::invalid_argument for an empty callback.
  static caf::expected<std::unique_ptr<uds_listener>>
  make(std::shared_ptr<reactor> io, const uds_address& addr,
       const transport_options& options, uds_socket_callback on_socket,
       rejection_counter rejected);

  /// Listens like make() and turns each accepted socket into a
  /// stream_connection, not yet started, for `on_accept`.
  static caf::expected<std::unique_ptr<uds_listener>>
  make_stream(std::shared_ptr<reactor> io, const uds_address& addr,
              const transport_options& options, accept_callback on_accept,
              rejection_counter rejected);

  /// Stops listening: after the destructor returns, the accept callback is
  /// not running and never runs again (when called from inside the callback,
  /// the callback returns right after it). Removes the socket file if it is
  /// still the one this listener created. Must not be called while holding a
  /// lock the accept callback takes.
  ~uds_listener() override;

  /// The canonical URI, e.g. "uds:///run/a.sock". Thread-safe.
  std::string uri() const override;

  struct state;

  /// Use make().
  uds_listener(std::shared_ptr<reactor> io, std::shared_ptr<state> st);

private:
  std::shared_ptr<reactor> io_;
  std::shared_ptr<state> state_;
};

} // namespace relay
