#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/node_id.hpp>

#include "relay/actor_handles.hpp"
#include "relay/transport.hpp"

namespace relay {

class node_impl;
class peer;

/// The way to one remote node: the connection currently serving it, shared
/// by all proxies of that node, and the requests waiting for its responses.
/// Outlives any single connection when two nodes briefly hold two
/// connections to each other (see node_impl::on_handshake).
///
/// Thread rules: all member functions are thread-safe.
class route {
public:
  explicit route(caf::node_id remote) : remote_(std::move(remote)) {
    // nop
  }

  const caf::node_id& remote() const noexcept {
    return remote_;
  }

  /// The peer serving the node, or null once the node is unreachable.
  std::shared_ptr<peer> current() const {
    return std::atomic_load(&current_);
  }

  void set(std::shared_ptr<peer> p) {
    std::atomic_store(&current_, std::move(p));
  }

  /// Remembers that local actor `sender` waits for response `response_id`.
  void add_pending(caf::actor_id sender, uint64_t response_id,
                   caf::weak_actor_ptr who);

  /// Forgets a request once its response arrived.
  void erase_pending(caf::actor_id sender, uint64_t response_id);

  /// Fails every waiting request with `reason`.
  void fail_pending(const caf::error& reason);

private:
  using pending_key = std::pair<caf::actor_id, uint64_t>;

  struct pending_key_hash {
    size_t operator()(const pending_key& x) const noexcept {
      return std::hash<uint64_t>{}(x.first * 0x9e3779b97f4a7c15ull ^ x.second);
    }
  };

  caf::node_id remote_;
  std::shared_ptr<peer> current_;
  std::mutex mtx_;
  std::unordered_map<pending_key, caf::weak_actor_ptr, pending_key_hash>
    pending_;
};

/// The node's side of one connection to another node: the handshake, then
/// encoding and decoding of every frame on it. One peer per connection; once
/// the handshake completes, the node routes everything for the remote node
/// through it (one connection per pair of nodes).
///
/// Thread rules: on_frame/on_closed run on the transport's I/O thread; the
/// send_* functions are called from any thread (actors, proxies).
class peer : public connection_handler,
             public codec_context,
             public std::enable_shared_from_this<peer> {
public:
  enum class state { handshaking, established, closed };

  /// Result of a handshake: the peer to use (this one, or the connection
  /// the node already had to that node), or why it failed.
  using ready_callback =
    std::function<void(const caf::error&, std::shared_ptr<peer>)>;

  peer(node_impl& node, connection_ptr conn, bool initiator, uint64_t serial);
  ~peer() override;

  /// Starts the connection and sends our hello.
  void start();

  /// Closes the connection with `reason` (logged with the peer's name).
  void close(const caf::error& reason);

  /// Calls `f` once the handshake completed or failed (immediately if it
  /// already did).
  void on_ready(ready_callback f);

  // -- sending (any thread) ---------------------------------------------------

  /// Serializes `what` for actor `receiver` on the remote node and sends it.
  /// Failures are reported to the sender of a request or counted as drops.
  void send_message(caf::actor_id receiver, caf::mailbox_element& what,
                    caf::execution_unit* ctx);

  /// Asks the remote node to report when its actor `aid` ends.
  void send_monitor(caf::actor_id aid);

  /// Reports that local actor `aid` ended with `reason`.
  void send_down(caf::actor_id aid, const caf::error& reason);

  /// Sends a link or unlink frame: local actor `local` and remote `remote`.
  void send_link(frame_kind kind, caf::actor_control_block* local,
                 caf::actor_id remote);

  /// Sends a lookup request for `name` with id `request_id`.
  caf::error send_lookup(uint64_t request_id, const std::string& name);

  /// Delivers `reason` to the sender of `what` if it is a request;
  /// otherwise does nothing (callers count the drop).
  static void bounce(caf::mailbox_element& what, const caf::error& reason,
                     caf::execution_unit* ctx);

  // -- connection_handler ------------------------------------------------------

  void on_frame(connection& conn, const frame_header& header,
                const std::byte* body) override;

  void on_closed(connection& conn, const caf::error& reason) override;

  // -- codec_context ------------------------------------------------------------

  void write_actor(wire_writer& ar, const caf::actor_control_block* x) override;

  caf::strong_actor_ptr read_actor(wire_reader& ar) override;

  // -- properties --------------------------------------------------------------

  /// "name@uds:///a.sock (pid 42, uid 1000)" or the transport's name alone
  /// before the handshake.
  std::string display_name() const;

  const caf::node_id& remote_id() const noexcept {
    return remote_id_;
  }

  bool initiator() const noexcept {
    return initiator_;
  }

  uint64_t serial() const noexcept {
    return serial_;
  }

  state current_state() const noexcept {
    return state_.load();
  }

  /// Sets the route this peer serves; called once by the node when the
  /// handshake completes, before the peer becomes established.
  void set_route(std::shared_ptr<route> r) {
    route_ = std::move(r);
  }

  /// The serial the initiator gave this connection (for tie-breaks).
  uint64_t initiator_serial() const noexcept {
    return initiator_ ? serial_ : remote_serial_;
  }

  /// Marks this connection as superseded by another connection to the
  /// same node: closing it then kills no proxies.
  void mark_duplicate() noexcept {
    duplicate_ = true;
  }

  bool duplicate() const noexcept {
    return duplicate_;
  }

private:
  void handle_hello(const frame_header& header, const std::byte* body,
                    size_t size);
  void handle_message(wire_reader& in);
  void handle_monitor(wire_reader& in);
  void handle_down(wire_reader& in);
  void handle_link(frame_kind kind, wire_reader& in);
  void handle_lookup(wire_reader& in);
  void handle_lookup_reply(wire_reader& in);

  /// Sends a reject frame with `reason`, then closes.
  void reject(const caf::error& reason);

  /// Finishes the handshake with `err` (none on success).
  void finish_handshake(const caf::error& err, std::shared_ptr<peer> use);

  /// Sends an error response for request `mid` to `sender` on the remote
  /// node (used when we cannot deliver or decode a request).
  void send_error_response(caf::strong_actor_ptr sender, caf::message_id mid,
                           caf::error reason);

  /// Sends a complete frame; errors are logged.
  caf::error send_frame(frame_buffer frame);

  node_impl& node_;
  connection_ptr conn_;
  const bool initiator_;
  const uint64_t serial_;
  std::atomic<state> state_{state::handshaking};
  std::atomic<bool> duplicate_{false};

  // Set once by the handshake, on the I/O thread, before state_ becomes
  // established; read-only afterwards.
  caf::node_id remote_id_;
  std::string remote_name_;
  uint64_t remote_serial_ = 0;
  std::shared_ptr<route> route_;

  mutable std::mutex mtx_;
  std::vector<ready_callback> ready_callbacks_;
  caf::error handshake_result_;
  bool handshake_done_ = false;
  // Weak: usually this peer itself, which must not keep itself alive.
  std::weak_ptr<peer> handshake_use_;
  // Local actors this peer monitors on behalf of the remote node.
  std::unordered_set<caf::actor_id> monitored_;
};

} // namespace relay
