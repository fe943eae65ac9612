#include "tls/tls_layer.hpp"

#include <cerrno>
#include <exception>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <caf/settings.hpp>

#include "relay/error.hpp"
#include "tcp/tcp_auth.hpp"
#include "tcp/tcp_socket.hpp"

namespace relay {

namespace {

constexpr char exporter_label[] = "EXPORTER-relay-channel-binding";

using clock_type = std::chrono::steady_clock;

// Whether the reason of OpenSSL error `code` says that a certificate was
// refused (ours by the peer, or the peer's by us).
bool certificate_refused(unsigned long code) {
  if (ERR_GET_LIB(code) != ERR_LIB_SSL)
    return false;
  switch (ERR_GET_REASON(code)) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
      return true;
    default:
      return false;
  }
}

// The error of a TLS handshake that failed with `rc` (not a want-read or
// want-write), naming `who`.
caf::error handshake_error(SSL* ssl, int rc, const std::string& who) {
  auto kind = SSL_get_error(ssl, rc);
  if (kind == SSL_ERROR_SYSCALL || kind == SSL_ERROR_ZERO_RETURN) {
    auto err = errno;
    ERR_clear_error();
    return err != 0 ? make_errno_error(errc::connection_closed, who, err,
                                       "TLS handshake")
                    : make_error(errc::connection_closed,
                                 who + ": closed the connection during the "
                                       "TLS handshake");
  }
  auto verify = SSL_get_verify_result(ssl);
  bool refused = certificate_refused(ERR_peek_error());
  auto text = ssl_errors("TLS handshake failed");
  if (verify != X509_V_OK)
    return make_error(errc::authentication_failed,
                      who + ": certificate not accepted: "
                        + X509_verify_cert_error_string(verify) + " ("
                        + text + ")");
  if (refused)
    return make_error(errc::authentication_failed,
                      who + ": TLS handshake refused: " + text);
  return make_error(errc::handshake_failed,
                    who + ": TLS handshake failed: " + text);
}

caf::error config_error(const std::string& uri, const std::string& what) {
  return make_error(errc::invalid_argument, uri + ": " + what);
}

// The exchange of tcp_auth.hpp inside the session (see tls_layer).
caf::expected<std::unique_ptr<tcp_auth::handshake>>
make_auth(tcp_auth::role role, SSL* ssl, const transport_options& options,
          const std::string& who) {
  std::vector<uint8_t> binding;
  if (!options.secret.empty()) {
    binding = channel_binding(ssl);
    if (binding.empty())
      return make_error(errc::handshake_failed,
                        who + ": no channel binding from the TLS session: "
                          + ssl_errors("exporter failed"));
  }
  try {
    return std::make_unique<tcp_auth::handshake>(role, options.secret, who,
                                                 std::move(binding));
  } catch (std::exception& ex) { // libcrypto failed
    return make_error(errc::handshake_failed, who + ": " + ex.what());
  }
}

} // namespace

// -- tls_options -----------------------------------------------------------------

tls_options tls_options::read(const caf::settings* settings) {
  tls_options result;
  if (settings == nullptr)
    return result;
  auto get = [&](caf::string_view key) {
    return caf::get_or(*settings, key, std::string{});
  };
  result.ca_file = get("relay.tls.ca-file");
  result.cert_file = get("relay.tls.cert-file");
  result.key_file = get("relay.tls.key-file");
  result.peer_name = get("relay.tls.peer-name");
  return result;
}

// -- tls_context -----------------------------------------------------------------

caf::expected<std::shared_ptr<tls_context>>
tls_context::make(const tls_options& options, const std::string& uri) {
  for (auto [value, key] :
       {std::pair{&options.ca_file, "relay.tls.ca-file"},
        std::pair{&options.cert_file, "relay.tls.cert-file"},
        std::pair{&options.key_file, "relay.tls.key-file"}})
    if (value->empty())
      return config_error(uri, std::string{"tls needs "} + key
                                 + " (tls authenticates both ends with "
                                   "certificates; see docs/security.md)");
  struct stat st{};
  if (::stat(options.key_file.c_str(), &st) != 0)
    return make_errno_error(errc::invalid_argument,
                            uri + ": relay.tls.key-file " + options.key_file,
                            errno, "stat");
  if ((st.st_mode & 077) != 0)
    return config_error(uri, "relay.tls.key-file " + options.key_file
                               + " can be read by other users; fix: chmod "
                                 "600 "
                               + options.key_file);
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{
    SSL_CTX_new(TLS_method()), SSL_CTX_free};
  if (!ctx)
    return config_error(uri, "no TLS context: " + ssl_errors("out of memory"));
  auto fail = [&](const std::string& what) {
    return config_error(uri, what + ": " + ssl_errors("unknown error"));
  };
  // An encrypted key would make OpenSSL prompt on the terminal.
  SSL_CTX_set_default_passwd_cb(ctx.get(),
                                [](char*, int, int, void*) { return 0; });
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1)
    return fail("cannot require TLS 1.3");
  if (SSL_CTX_load_verify_locations(ctx.get(), options.ca_file.c_str(),
                                    nullptr)
      != 1)
    return fail("cannot load relay.tls.ca-file " + options.ca_file);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.cert_file.c_str())
      != 1)
    return fail("cannot load relay.tls.cert-file " + options.cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), options.key_file.c_str(),
                                  SSL_FILETYPE_PEM)
      != 1)
    return fail("cannot load relay.tls.key-file " + options.key_file
                + " (an encrypted key is not supported)");
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return fail("relay.tls.key-file " + options.key_file
                + " does not match relay.tls.cert-file " + options.cert_file);
  // Both ends present a certificate that the CA signed.
  SSL_CTX_set_verify(ctx.get(),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     nullptr);
  // No resumption: every connection is a full, mutually authenticated
  // handshake, and nothing arrives after it that nobody reads.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE
                                | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read as much as the socket has, not one record header and body at a
  // time: one recv for many small records (tls_channel and stream_connection
  // learn from SSL_has_pending and full reads what this leaves buffered).
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  // A peer that closes without close_notify ends the stream like any close
  // (frames are length-checked, so a cut shows as "closed mid-frame").
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  return std::make_shared<tls_context>(ctx.release(), options.peer_name);
}

tls_context::~tls_context() {
  SSL_CTX_free(ctx_);
}

caf::expected<ssl_ptr> tls_context::session(int fd, bool server,
                                            const std::string& who) const {
  auto code = server ? errc::peer_rejected : errc::connect_failed;
  ERR_clear_error();
  ssl_ptr ssl{SSL_new(ctx_)};
  if (!ssl || !attach_socket(ssl.get(), fd))
    return make_error(code, who + ": no TLS session: "
                              + ssl_errors("out of memory"));
  if (!peer_name_.empty()) {
    auto* param = SSL_get0_param(ssl.get());
    X509_VERIFY_PARAM_set_hostflags(param,
                                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS
                                      | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    if (X509_VERIFY_PARAM_set1_host(param, peer_name_.c_str(), 0) != 1)
      return make_error(code, who + ": cannot pin relay.tls.peer-name "
                                + peer_name_);
    if (!server)
      SSL_set_tlsext_host_name(ssl.get(), peer_name_.c_str());
  }
  if (server)
    SSL_set_accept_state(ssl.get());
  else
    SSL_set_connect_state(ssl.get());
  return ssl;
}

std::vector<uint8_t> channel_binding(SSL* ssl) {
  std::vector<uint8_t> result(32);
  if (SSL_export_keying_material(ssl, result.data(), result.size(),
                                 exporter_label, sizeof(exporter_label) - 1,
                                 nullptr, 0, 0)
      != 1)
    result.clear();
  return result;
}

// -- tls_layer -------------------------------------------------------------------

caf::expected<std::shared_ptr<tls_context>>
tls_layer::context(const std::string& uri) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!ctx_) {
    auto ctx = tls_context::make(tls_options::read(options_.settings), uri);
    if (!ctx)
      return ctx.error();
    ctx_ = std::move(*ctx);
  }
  return ctx_;
}

caf::error tls_layer::prepare(const std::string& uri) {
  auto ctx = context(uri);
  return ctx ? caf::none : ctx.error();
}

caf::expected<tcp_layer::server_setup>
tls_layer::accept(const std::string& peer) {
  auto ctx = context(peer);
  if (!ctx)
    return ctx.error();
  // Shared by the steps and the finish of one set-up (reactor thread).
  struct state {
    std::shared_ptr<tls_context> ctx;
    ssl_ptr ssl;
    std::unique_ptr<tcp_auth::handshake> auth; // once TLS is up
  };
  auto st = std::make_shared<state>();
  st->ctx = std::move(*ctx);
  server_setup result;
  result.step = [st, peer, options = options_](int fd) -> setup_status {
    if (!st->ssl) {
      auto ssl = st->ctx->session(fd, true, peer);
      if (!ssl)
        return setup_status::fail(ssl.error());
      st->ssl = std::move(*ssl);
    }
    if (!st->auth) {
      ERR_clear_error();
      auto rc = SSL_do_handshake(st->ssl.get());
      if (rc != 1) {
        switch (SSL_get_error(st->ssl.get(), rc)) {
          case SSL_ERROR_WANT_READ:
            return setup_status::wait(EPOLLIN);
          case SSL_ERROR_WANT_WRITE:
            return setup_status::wait(EPOLLOUT);
          default:
            return setup_status::fail(
              handshake_error(st->ssl.get(), rc, peer));
        }
      }
      auto auth = make_auth(tcp_auth::role::server, st->ssl.get(), options,
                            peer);
      if (!auth)
        return setup_status::fail(auth.error());
      st->auth = std::move(*auth);
    }
    tls_handshake_io io{st->ssl.get(), fd};
    return auth_step(io, *st->auth, peer);
  };
  result.finish = [st](unique_fd fd) -> std::unique_ptr<byte_channel> {
    return std::make_unique<tls_channel>(std::move(fd), std::move(st->ssl));
  };
  return result;
}

caf::expected<std::unique_ptr<byte_channel>>
tls_layer::connect(unique_fd fd, std::chrono::steady_clock::time_point deadline,
                   const std::string& who) {
  auto ctx = context(who);
  if (!ctx)
    return ctx.error();
  auto ssl = (*ctx)->session(fd.get(), false, who);
  if (!ssl)
    return ssl.error();
  // The handshake, then the first record from the server (its challenge):
  // in TLS 1.3 the server judges our certificate after we finished, and
  // waiting for its first word before saying anything more makes a refusal
  // arrive as a clean alert (had we sent more, its close could reset the
  // connection and lose the alert).
  for (bool handshaken = false;;) {
    ERR_clear_error();
    uint8_t peek = 0;
    size_t got = 0;
    auto rc = handshaken ? SSL_peek_ex(ssl->get(), &peek, 1, &got)
                         : SSL_do_handshake(ssl->get());
    if (rc == 1) {
      if (handshaken)
        break;
      handshaken = true;
      continue;
    }
    short events;
    switch (SSL_get_error(ssl->get(), rc)) {
      case SSL_ERROR_WANT_READ:
        events = POLLIN;
        break;
      case SSL_ERROR_WANT_WRITE:
        events = POLLOUT;
        break;
      default:
        return handshake_error(ssl->get(), rc, who);
    }
    for (;;) {
      using namespace std::chrono;
      auto left = duration_cast<milliseconds>(deadline - clock_type::now());
      if (left.count() <= 0)
        return make_error(errc::handshake_timeout,
                          who + ": the peer did not complete the TLS "
                                "handshake in time");
      pollfd p{fd.get(), events, 0};
      auto n = ::poll(&p, 1, poll_timeout(left));
      if (n > 0)
        break;
      if (n < 0 && errno != EINTR)
        return make_errno_error(errc::connection_closed, who, errno, "poll");
    }
  }
  auto auth = make_auth(tcp_auth::role::client, ssl->get(), options_, who);
  if (!auth)
    return auth.error();
  tls_handshake_io io{ssl->get(), fd.get()};
  try {
    if (auto err = run_handshake(io, **auth, deadline, who))
      return err;
  } catch (std::exception& ex) { // libcrypto failed
    return make_error(errc::handshake_failed, who + ": " + ex.what());
  }
  return std::unique_ptr<byte_channel>{
    std::make_unique<tls_channel>(std::move(fd), std::move(*ssl))};
}

} // namespace relay
