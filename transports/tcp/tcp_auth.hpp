#pragma once

// Mutual authentication of a TCP connection with a shared secret, before any
// Relay frame. See docs/security.md for the protocol and its rationale.
//
//   both    -> challenge: "RLYA", version u8, mode u8, reserved u16, nonce[32]
//   client  -> proof_c:   HMAC-SHA256(secret, label 'C' nonce_c nonce_s)
//   server  -> verdict u8 (0 accepted, 1 rejected), then if accepted
//              proof_s:   HMAC-SHA256(secret, label 'S' nonce_s nonce_c)
//   client  -> verdict u8
//
// The server proves itself only to a client that proved itself first, so a
// stranger learns nothing but a random nonce. Fresh nonces on both sides make
// a recorded handshake worthless later. Mode 0 (no secret on either side,
// explicitly allowed) stops after the challenges.
//
// Channel binding (tls://): when the exchange runs inside a TLS session,
// both proofs also cover 32 bytes exported from that session (RFC 5705/8446
// exporter, label "EXPORTER-relay-channel-binding"), so a proof made for one
// TLS session is worthless in another: a relay that terminates TLS with
// each side cannot pass the proofs through (docs/security.md).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/error.hpp>

namespace relay::tcp_auth {

constexpr uint32_t magic = 0x41594c52; // "RLYA" read as little-endian u32
constexpr uint8_t version = 1;
constexpr size_t nonce_size = 32;
constexpr size_t mac_size = 32;
constexpr size_t challenge_size = 4 + 1 + 1 + 2 + nonce_size;

enum class role : uint8_t { client = 'C', server = 'S' };

enum class mode : uint8_t { none = 0, hmac_sha256 = 1 };

/// HMAC-SHA256(secret, "relay-tcp-auth-v1" || prover || own || other
/// [|| binding]): the proof that `prover` knows `secret`, bound to both
/// nonces and, when `binding` is not empty, to the channel it travels in.
std::array<uint8_t, mac_size> proof(const std::string& secret, role prover,
                                    const uint8_t* own_nonce,
                                    const uint8_t* other_nonce,
                                    const std::vector<uint8_t>& binding = {});

/// The handshake of one side as a state machine without I/O: the caller
/// writes output() to the socket and feeds what it reads, at most wanted()
/// bytes at a time (never more, so no frame byte is consumed here).
class handshake {
public:
  enum class status { running, succeeded, failed };

  /// `secret` empty: mode none (the caller checked that this is allowed).
  /// `peer` names the peer in errors. `binding`: bytes both sides derived
  /// from the channel (see above), or empty. Fills output() with the
  /// challenge.
  handshake(role self, std::string secret, std::string peer,
            std::vector<uint8_t> binding = {});

  /// Bytes to send, in order. The caller erases what it sent.
  std::vector<uint8_t>& output() noexcept {
    return out_;
  }

  /// Bytes the handshake needs before it can go on; 0 once it ended.
  size_t wanted() const noexcept {
    return state_ == status::running ? need_ - in_.size() : 0;
  }

  /// Takes `n` <= wanted() bytes from the peer.
  void feed(const uint8_t* data, size_t n);

  status state() const noexcept {
    return state_;
  }

  /// Why it failed (errc::authentication_failed, version_mismatch or
  /// handshake_failed, naming the peer); empty unless failed.
  const caf::error& error() const noexcept {
    return error_;
  }

private:
  enum class step { challenge, proof, verdict, server_proof, final_verdict };

  void on_message();
  // Added to "wrong secret" when a proof does not match.
  std::string mismatch_hint() const;
  void fail(caf::error reason);
  void expect(step next, size_t bytes);

  role self_;
  std::string secret_;
  std::string peer_;
  std::vector<uint8_t> binding_;
  std::array<uint8_t, nonce_size> nonce_{};
  std::array<uint8_t, nonce_size> peer_nonce_{};
  step step_ = step::challenge;
  size_t need_ = challenge_size;
  std::vector<uint8_t> in_;
  std::vector<uint8_t> out_;
  status state_ = status::running;
  caf::error error_;
};

} // namespace relay::tcp_auth
