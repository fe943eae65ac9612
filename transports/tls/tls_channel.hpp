#pragma once

// A TLS session on a connected TCP socket, as the byte channel of a
// stream_connection (after the set-up of tls_layer.hpp) and as the
// handshake_io the shared-secret proof runs over during the set-up.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "common/byte_channel.hpp"
#include "common/socket_util.hpp"
#include "tcp/tcp_socket.hpp"

namespace relay {

/// Frees an SSL.
struct ssl_deleter {
  void operator()(SSL* x) const noexcept {
    SSL_free(x);
  }
};

using ssl_ptr = std::unique_ptr<SSL, ssl_deleter>;

/// Attaches `fd` to `ssl` through a BIO that reads and writes the socket
/// without blocking and with MSG_NOSIGNAL (OpenSSL's own socket BIO would
/// raise SIGPIPE on a peer that is gone). The BIO does not own `fd`.
/// Returns false if libssl could not make the BIO.
bool attach_socket(SSL* ssl, int fd);

/// Every error on OpenSSL's error queue of this thread as one line, oldest
/// first ("error:0A000086:SSL routines::certificate verify failed; ..."),
/// and clears the queue; `fallback` if it is empty.
std::string ssl_errors(const std::string& fallback);

/// The TLS session of a stream_connection. Owns the socket and the SSL.
///
/// Thread rules: read() runs on the reactor thread, write() under the
/// connection's lock on any thread; an internal mutex serialises them,
/// since one SSL must not be used by two threads at once.
///
/// Records: write() gathers small frames into records of up to
/// record_size bytes (one record and one send per 16 KiB instead of one per
/// frame) and passes larger pieces as they are. After a write that could
/// not finish (EAGAIN), OpenSSL needs the same bytes again; the connection
/// retries from the same queue position, and the gathered length never
/// shrinks, so that holds.
class tls_channel : public byte_channel {
public:
  /// Largest plaintext of one TLS record.
  static constexpr size_t record_size = 16 * 1024;

  /// `ssl` completed its handshake on `fd`.
  tls_channel(unique_fd fd, ssl_ptr ssl);

  int fd() const noexcept override {
    return fd_.get();
  }

  /// Reads decrypted bytes until `len` or nothing more is there now. At a
  /// TLS error: -1 with errno EPROTO (error_text names the TLS error).
  ssize_t read(void* buf, size_t len) override;

  ssize_t write(const iovec* iov, size_t count) override;

  /// True if the last read() filled its buffer: OpenSSL may hold more,
  /// which the socket does not report.
  bool poll_more() override;

  /// True if OpenSSL holds bytes read ahead from the socket (e.g. during
  /// the set-up).
  bool has_buffered_input() override;

  std::string error_text(int err) const override;

  /// Sends close_notify (best effort: not if the socket has no room), then
  /// ends the socket's write direction.
  bool shutdown_write() override;

private:
  // What a read() or write() that already moved bytes could not report:
  // the failure comes with the next call (errno, or 0 for the end of the
  // stream). OpenSSL itself would report a failed session again only
  // without the reason.
  struct deferred {
    bool set = false;
    int err = 0;

    // Returns the deferred result (-1 with errno, or 0) and clears it.
    ssize_t take() {
      set = false;
      if (err == 0)
        return 0;
      errno = err;
      return -1;
    }
  };

  // Keeps the outcome of failed call `rc` in `out` unless it is a mere
  // EAGAIN.
  void defer(int rc, deferred& out);

  unique_fd fd_;
  mutable std::mutex mtx_;
  ssl_ptr ssl_;                 // guarded by mtx_
  std::vector<uint8_t> gather_; // guarded by mtx_
  std::string last_error_;      // guarded by mtx_
  bool filled_ = false;         // guarded by mtx_: see poll_more
  deferred read_failure_;       // guarded by mtx_
  deferred write_failure_;      // guarded by mtx_
};

/// handshake_io over an SSL that completed its handshake (not owned).
class tls_handshake_io : public handshake_io {
public:
  tls_handshake_io(SSL* ssl, int fd) : ssl_(ssl), fd_(fd) {
    // nop
  }

  int fd() const noexcept override {
    return fd_;
  }

  ssize_t send(const uint8_t* data, size_t size) override;

  ssize_t recv(uint8_t* data, size_t size) override;

private:
  SSL* ssl_;
  int fd_;
};

} // namespace relay
