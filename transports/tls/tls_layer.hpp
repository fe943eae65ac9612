#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include <caf/expected.hpp>

#include "relay/transport.hpp"
#include "tcp/tcp_layer.hpp"
#include "tls/tls_channel.hpp"

namespace relay {

/// The options of tls:// (relay.tls.*), declared by tls_transport.
struct tls_options {
  /// PEM file of the certificate authorities that sign peers' certificates.
  std::string ca_file;
  /// PEM file of this node's certificate (chain), presented to every peer.
  std::string cert_file;
  /// PEM file of this node's private key; must not be readable by group or
  /// others.
  std::string key_file;
  /// If set, a peer's certificate must carry this DNS name in its
  /// subjectAltName (the common name is not used): a pin on top of the CA.
  std::string peer_name;

  /// Reads relay.tls.* from `settings` (may be null).
  static tls_options read(const caf::settings* settings);
};

/// An SSL_CTX for TLS 1.3 with mutual certificate authentication, made once
/// from tls_options.
///
/// Thread rules: immutable after make(); session() is thread-safe.
class tls_context {
public:
  /// Loads the files. Errors (errc::invalid_argument, naming `uri` and the
  /// option): an option not set, a file that cannot be read or parsed, a
  /// key that does not match the certificate, a key file that others can
  /// read.
  static caf::expected<std::shared_ptr<tls_context>>
  make(const tls_options& options, const std::string& uri);

  ~tls_context();

  /// A new session on socket `fd` in the server or client role, with the
  /// peer-name pin applied. Errors: errc::connect_failed or
  /// errc::peer_rejected (libssl out of memory), naming `who`.
  caf::expected<ssl_ptr> session(int fd, bool server,
                                 const std::string& who) const;

  tls_context(SSL_CTX* ctx, std::string peer_name)
    : ctx_(ctx), peer_name_(std::move(peer_name)) {
    // nop
  }

private:
  SSL_CTX* ctx_;
  std::string peer_name_;
};

/// The channel binding of a TLS session: 32 bytes from the RFC 8446
/// exporter with label "EXPORTER-relay-channel-binding" and no context,
/// equal on both ends of one session and unrelated across sessions. Empty
/// if libssl fails.
std::vector<uint8_t> channel_binding(SSL* ssl);

/// tls://: TLS 1.3 with mutual certificate authentication (tls_context),
/// then, inside the session, the exchange of tcp_auth.hpp: with a secret the
/// proofs bound to the session (channel_binding), without one the
/// challenges alone, which confirm to the client that the server accepted
/// its certificate before connect returns.
class tls_layer : public tcp_layer {
public:
  explicit tls_layer(transport_options options) : options_(std::move(options)) {
    // nop
  }

  const char* scheme() const noexcept override {
    return "tls";
  }

  /// Loads the certificates (once, at the first listen or connect).
  caf::error prepare(const std::string& uri) override;

  caf::expected<server_setup> accept(const std::string& peer) override;

  caf::expected<std::unique_ptr<byte_channel>>
  connect(unique_fd fd, std::chrono::steady_clock::time_point deadline,
          const std::string& who) override;

private:
  caf::expected<std::shared_ptr<tls_context>> context(const std::string& uri);

  transport_options options_;
  std::mutex mtx_;
  std::shared_ptr<tls_context> ctx_; // guarded by mtx_
};

} // namespace relay
