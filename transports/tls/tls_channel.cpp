#include "tls/tls_channel.hpp"

#include <cerrno>
#include <cstring>

#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>

namespace relay {

namespace {

int sock_of(BIO* b) {
  return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b)));
}

int bio_write(BIO* b, const char* data, size_t size, size_t* written) {
  BIO_clear_retry_flags(b);
  auto n = ::send(sock_of(b), data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n >= 0) {
    *written = static_cast<size_t>(n);
    return 1;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    BIO_set_retry_write(b);
  return 0;
}

int bio_read(BIO* b, char* data, size_t size, size_t* read) {
  BIO_clear_retry_flags(b);
  auto n = ::recv(sock_of(b), data, size, MSG_DONTWAIT);
  if (n > 0) {
    *read = static_cast<size_t>(n);
    return 1;
  }
  if (n == 0)
    BIO_set_flags(b, BIO_FLAGS_IN_EOF); // libssl asks BIO_eof() next
  else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    BIO_set_retry_read(b);
  return 0;
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
    default:
      return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* socket_method() {
  static BIO_METHOD* method = [] {
    auto* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                           "relay non-blocking socket");
    if (m != nullptr) {
      BIO_meth_set_write_ex(m, bio_write);
      BIO_meth_set_read_ex(m, bio_read);
      BIO_meth_set_ctrl(m, bio_ctrl);
      BIO_meth_set_create(m, bio_create);
    }
    return m;
  }();
  return method;
}

// Maps the outcome of a failed SSL_read_ex/SSL_write_ex to errno; returns
// -1, or 0 at a clean end of the stream. A read that needs a write, or a
// write that needs a read (only when a peer asks for a TLS 1.3 KeyUpdate,
// which Relay never does), is EAGAIN too: the connection then waits for
// the readiness it watches anyway and calls again.
ssize_t failed(SSL* ssl, int rc, std::string* last_error) {
  switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      if (errno == 0)
        errno = ECONNRESET;
      ERR_clear_error();
      return -1;
    default: {
      auto text = ssl_errors("TLS error");
      if (last_error != nullptr)
        *last_error = std::move(text);
      errno = EPROTO;
      return -1;
    }
  }
}

} // namespace

bool attach_socket(SSL* ssl, int fd) {
  auto* method = socket_method();
  if (method == nullptr)
    return false;
  auto* bio = BIO_new(method);
  if (bio == nullptr)
    return false;
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  SSL_set_bio(ssl, bio, bio); // one BIO for both: SSL takes one reference
  return true;
}

std::string ssl_errors(const std::string& fallback) {
  std::string result;
  while (auto code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!result.empty())
      result += "; ";
    result += buf;
  }
  return result.empty() ? fallback : result;
}

// -- tls_channel ---------------------------------------------------------------

tls_channel::tls_channel(unique_fd fd, ssl_ptr ssl)
  : fd_(std::move(fd)), ssl_(std::move(ssl)) {
  gather_.reserve(record_size);
}

void tls_channel::defer(int rc, deferred& out) {
  auto result = failed(ssl_.get(), rc, &last_error_);
  if (result < 0 && errno == EAGAIN)
    return;
  out.set = true;
  out.err = result == 0 ? 0 : errno;
}

ssize_t tls_channel::read(void* buf, size_t len) {
  std::lock_guard<std::mutex> guard{mtx_};
  filled_ = false;
  if (read_failure_.set)
    return read_failure_.take();
  auto* out = static_cast<uint8_t*>(buf);
  size_t total = 0;
  while (total < len) {
    ERR_clear_error();
    size_t n = 0;
    auto rc = SSL_read_ex(ssl_.get(), out + total, len - total, &n);
    if (rc == 1) {
      total += n;
      continue;
    }
    if (total > 0) {
      // Deliver what came first; the failure comes with the next call,
      // which comes at once (poll_more).
      defer(rc, read_failure_);
      filled_ = read_failure_.set;
      return static_cast<ssize_t>(total);
    }
    return failed(ssl_.get(), rc, &last_error_);
  }
  filled_ = total == len;
  return static_cast<ssize_t>(total);
}

ssize_t tls_channel::write(const iovec* iov, size_t count) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (write_failure_.set) {
    auto result = write_failure_.take();
    if (result == 0)
      errno = EPIPE;
    return -1;
  }
  size_t total = 0;
  size_t i = 0;   // current iovec
  size_t off = 0; // bytes of iov[i] already written
  while (i < count) {
    auto* base = static_cast<const uint8_t*>(iov[i].iov_base);
    auto rest = iov[i].iov_len - off;
    const uint8_t* data = base + off;
    size_t size = rest;
    if (rest < record_size && i + 1 < count) {
      // Gather small pieces into one record.
      gather_.assign(data, data + rest);
      for (size_t j = i + 1; j < count && gather_.size() < record_size; ++j) {
        auto* p = static_cast<const uint8_t*>(iov[j].iov_base);
        auto take = std::min(iov[j].iov_len, record_size - gather_.size());
        gather_.insert(gather_.end(), p, p + take);
      }
      data = gather_.data();
      size = gather_.size();
    }
    ERR_clear_error();
    size_t n = 0;
    auto rc = SSL_write_ex(ssl_.get(), data, size, &n);
    if (rc != 1) {
      if (total > 0) {
        defer(rc, write_failure_);
        break;
      }
      auto result = failed(ssl_.get(), rc, &last_error_);
      if (result == 0) { // the peer closed: no more writing
        errno = EPIPE;
        return -1;
      }
      return result;
    }
    total += n;
    // Advance over the n bytes written, across iovecs.
    while (n > 0 && i < count) {
      auto left = iov[i].iov_len - off;
      if (n < left) {
        off += n;
        n = 0;
      } else {
        n -= left;
        ++i;
        off = 0;
      }
    }
    while (i < count && iov[i].iov_len == 0)
      ++i;
  }
  return static_cast<ssize_t>(total);
}

bool tls_channel::poll_more() {
  std::lock_guard<std::mutex> guard{mtx_};
  return filled_;
}

bool tls_channel::has_buffered_input() {
  std::lock_guard<std::mutex> guard{mtx_};
  return SSL_has_pending(ssl_.get()) == 1;
}

std::string tls_channel::error_text(int err) const {
  std::lock_guard<std::mutex> guard{mtx_};
  if (err == EPROTO && !last_error_.empty())
    return "TLS: " + last_error_;
  return byte_channel::error_text(err);
}

// -- tls_handshake_io ----------------------------------------------------------

ssize_t tls_handshake_io::send(const uint8_t* data, size_t size) {
  ERR_clear_error();
  size_t n = 0;
  auto rc = SSL_write_ex(ssl_, data, size, &n);
  if (rc == 1)
    return static_cast<ssize_t>(n);
  auto result = failed(ssl_, rc, nullptr);
  if (result == 0) {
    errno = EPIPE;
    return -1;
  }
  return result;
}

ssize_t tls_handshake_io::recv(uint8_t* data, size_t size) {
  ERR_clear_error();
  size_t n = 0;
  auto rc = SSL_read_ex(ssl_, data, size, &n);
  if (rc == 1)
    return static_cast<ssize_t>(n);
  return failed(ssl_, rc, nullptr);
}


bool tls_channel::shutdown_write() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    // TLS 1.3 allows reading after our close_notify (a half close).
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }
  return ::shutdown(fd_.get(), SHUT_WR) == 0;
}

} // namespace relay
