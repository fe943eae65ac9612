#include "tcp/tcp_auth.hpp"

#include <cstring>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/byte_order.hpp"
#include "relay/error.hpp"

namespace relay::tcp_auth {

namespace {

constexpr char label[] = "relay-tcp-auth-v1";
constexpr uint8_t accepted = 0;
constexpr uint8_t rejected = 1;

void put_u32(std::vector<uint8_t>& out, uint32_t x) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<uint8_t>(x >> (8 * i)));
}

} // namespace

std::array<uint8_t, mac_size> proof(const std::string& secret, role prover,
                                    const uint8_t* own_nonce,
                                    const uint8_t* other_nonce,
                                    const std::vector<uint8_t>& binding) {
  std::vector<uint8_t> msg(label, label + sizeof(label) - 1);
  msg.push_back(static_cast<uint8_t>(prover));
  msg.insert(msg.end(), own_nonce, own_nonce + nonce_size);
  msg.insert(msg.end(), other_nonce, other_nonce + nonce_size);
  msg.insert(msg.end(), binding.begin(), binding.end());
  std::array<uint8_t, mac_size> result{};
  unsigned len = 0;
  if (::HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
             msg.data(), msg.size(), result.data(), &len)
        == nullptr
      || len != mac_size)
    throw std::runtime_error("HMAC-SHA256 failed in libcrypto");
  return result;
}

handshake::handshake(role self, std::string secret, std::string peer,
                     std::vector<uint8_t> binding)
  : self_(self),
    secret_(std::move(secret)),
    peer_(std::move(peer)),
    binding_(std::move(binding)) {
  if (::RAND_bytes(nonce_.data(), static_cast<int>(nonce_.size())) != 1)
    throw std::runtime_error("no random bytes from libcrypto for a nonce");
  put_u32(out_, magic);
  out_.push_back(version);
  out_.push_back(static_cast<uint8_t>(secret_.empty() ? mode::none
                                                      : mode::hmac_sha256));
  out_.push_back(0);
  out_.push_back(0);
  out_.insert(out_.end(), nonce_.begin(), nonce_.end());
  in_.reserve(challenge_size);
}

void handshake::feed(const uint8_t* data, size_t n) {
  if (state_ != status::running || n > wanted())
    throw std::logic_error("tcp_auth::handshake fed more than it wanted");
  in_.insert(in_.end(), data, data + n);
  if (in_.size() == need_) {
    on_message();
    in_.clear();
  }
}

void handshake::expect(step next, size_t bytes) {
  step_ = next;
  need_ = bytes;
}

std::string handshake::mismatch_hint() const {
  return binding_.empty() ? std::string{}
                          : std::string{", or the TLS session was relayed"};
}

void handshake::fail(caf::error reason) {
  state_ = status::failed;
  error_ = std::move(reason);
}

void handshake::on_message() {
  auto auth_error = [this](const std::string& why) {
    fail(make_error(errc::authentication_failed,
                    peer_ + ": authentication failed: " + why));
  };
  const uint8_t* p = in_.data();
  switch (step_) {
    case step::challenge: {
      if (get_le32(p) != magic) {
        fail(make_error(errc::handshake_failed,
                        peer_ + ": not a Relay tcp peer (bad magic in the "
                                "authentication challenge)"));
        return;
      }
      if (p[4] != version) {
        fail(make_error(errc::version_mismatch,
                        peer_ + ": peer speaks authentication version "
                          + std::to_string(p[4]) + ", this node version "
                          + std::to_string(version)));
        return;
      }
      auto peer_mode = p[5];
      bool secure = !secret_.empty();
      if (peer_mode != static_cast<uint8_t>(mode::none)
          && peer_mode != static_cast<uint8_t>(mode::hmac_sha256)) {
        fail(make_error(errc::handshake_failed,
                        peer_ + ": unknown authentication mode "
                          + std::to_string(peer_mode)));
        return;
      }
      if (peer_mode == static_cast<uint8_t>(mode::none) && secure) {
        auth_error("the peer runs without a secret (insecure mode); this "
                   "node requires authentication");
        return;
      }
      if (peer_mode != static_cast<uint8_t>(mode::none) && !secure) {
        auth_error("the peer requires authentication; this node has no "
                   "secret (insecure mode)");
        return;
      }
      std::memcpy(peer_nonce_.data(), p + 8, nonce_size);
      if (peer_nonce_ == nonce_) {
        auth_error("the peer echoed our nonce (reflection)");
        return;
      }
      if (!secure) {
        state_ = status::succeeded;
        return;
      }
      if (self_ == role::client) {
        auto mac = proof(secret_, role::client, nonce_.data(),
                         peer_nonce_.data(), binding_);
        out_.insert(out_.end(), mac.begin(), mac.end());
        expect(step::verdict, 1);
      } else {
        expect(step::proof, mac_size);
      }
      return;
    }
    case step::proof: { // server: check the client
      auto mac = proof(secret_, role::client, peer_nonce_.data(),
                       nonce_.data(), binding_);
      if (CRYPTO_memcmp(mac.data(), p, mac_size) != 0) {
        out_.push_back(rejected);
        auth_error("the peer's proof does not match (wrong secret"
                   + mismatch_hint() + ")");
        return;
      }
      out_.push_back(accepted);
      auto own = proof(secret_, role::server, nonce_.data(),
                       peer_nonce_.data(), binding_);
      out_.insert(out_.end(), own.begin(), own.end());
      expect(step::final_verdict, 1);
      return;
    }
    case step::verdict: // client: did the server accept us?
      if (p[0] != accepted) {
        auth_error("the server rejected our proof (wrong secret"
                   + mismatch_hint() + ")");
        return;
      }
      expect(step::server_proof, mac_size);
      return;
    case step::server_proof: { // client: check the server
      auto mac = proof(secret_, role::server, peer_nonce_.data(),
                       nonce_.data(), binding_);
      if (CRYPTO_memcmp(mac.data(), p, mac_size) != 0) {
        out_.push_back(rejected);
        auth_error("the server's proof does not match (wrong secret"
                   + mismatch_hint() + ")");
        return;
      }
      out_.push_back(accepted);
      state_ = status::succeeded;
      return;
    }
    case step::final_verdict: // server: did the client accept us?
      if (p[0] != accepted) {
        auth_error("the client rejected our proof (wrong secret)");
        return;
      }
      state_ = status::succeeded;
      return;
  }
}

} // namespace relay::tcp_auth
