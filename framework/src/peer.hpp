#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/node_id.hpp>

#include <caf/timestamp.hpp>

#include "relay/actor_handles.hpp"
#include "relay/frame_handler.hpp"
#include "relay/node_config.hpp"
#include "relay/node_events.hpp"
#include "relay/transport.hpp"
#include "route.hpp"

namespace relay {

class inbound_budget;
class node_impl;
class peer;
class session;

namespace wire {
struct resume_info;
} // namespace wire

/// The node's side of one connection to another node: the handshake
/// (handshake.cpp), then every frame on it, dispatched by kind through the
/// node's frame_table to the protocol that owns the kind (one file each:
/// message_protocol.cpp, monitor_protocol.cpp, lookup_protocol.cpp,
/// heartbeat.cpp, retire.cpp, and modules). One peer per connection; once the handshake
/// completes, the node routes everything for the remote node through it (one
/// connection per pair of nodes).
///
/// Thread rules: on_frame/on_closed run on the transport's I/O thread; the
/// send_* functions are called from any thread (actors, proxies).
class peer : public connection_handler,
             public codec_context,
             public peer_context,
             public std::enable_shared_from_this<peer> {
public:
  enum class state { handshaking, established, closed };

  /// Result of a handshake: the peer to use (this one, or the connection
  /// the node already had to that node), or why it failed.
  using ready_callback =
    std::function<void(const caf::error&, std::shared_ptr<peer>)>;

  /// `uri` is the address dialed (initiator) or empty; `scheme` the
  /// transport's URI scheme.
  peer(node_impl& node, connection_ptr conn, bool initiator, uint64_t serial,
       std::string uri, std::string scheme,
       trust_level trust = trust_level::trusted);
  ~peer() override;

  /// Starts the connection and sends our hello.
  void start();

  // -- sessions and resuming them (resume.cpp) ----------------------------------

  /// Makes this (not yet started) connection resume `broken`, the node's
  /// connection to the same node that broke: its hello carries flag_resume.
  void resume_of(std::shared_ptr<peer> broken);

  /// The session this connection carries, or null if it has none (either
  /// side cannot resume, or it retired). Thread-safe.
  std::shared_ptr<session> current_session() const;

  /// Whether the end of this connection with `reason` may be a break to
  /// resume rather than the end of the node: established with a session,
  /// serving its node, not closed by us or after the remote's goodbye, not
  /// for a protocol violation or silence, and (uds) the remote process
  /// still exists.
  bool may_resume_after(const caf::error& reason) const;

  /// Closes a connection that the remote replaces by a resuming one (it
  /// saw a break that we did not see yet) as a break, not as an end.
  void close_as_broken(const caf::error& reason);

  /// Sends an ack if frames were dispatched since the last (the heartbeat's
  /// periodic call; a busy connection acks as it dispatches).
  void send_ack_if_due();

  /// Counts an actor message from the remote handed to a local actor
  /// (message_protocol.cpp); peer_info::messages_in.
  void count_message_in() noexcept {
    messages_in_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Sends a probe frame whose answer times a round trip into the
  /// connection's histogram (peer_info::rtt), if the remote answers probes
  /// (hello flag_probe). Returns whether it sent one. The heartbeat's tick.
  bool send_probe();

  /// The remote answered a probe with `token` (frame handler). Only the
  /// answer to the probe outstanding counts; another is ignored.
  void on_probe_reply(uint64_t token);

  /// Answers the remote's probe (frame handler), unless the outbound queue
  /// is at relay.max-queued-bytes.
  void answer_probe(uint64_t token);

  /// The remote acknowledged or said goodbye (frame handlers).
  void on_ack(uint64_t count);
  void on_goodbye();

  /// Whether frames sent through this peer still go somewhere: it is open,
  /// retired (frames pass to its successor), or its session continues on
  /// another connection or waits to resume.
  bool accepts_frames() const;

  /// Bytes waiting in the outbound queue of the connection that carries
  /// this peer's frames now.
  uint64_t queued_bytes() const;

  /// Continues `broken`'s session on this connection, whose remote said it
  /// dispatched `remote_dispatched` of the session's frames (session::
  /// resume; the acceptor's resume frame goes first). Returns the number of
  /// frames resent. Call under the node's event order lock.
  caf::expected<uint64_t> adopt_session(const std::shared_ptr<peer>& broken,
                                        uint64_t remote_dispatched);

  /// The connection this one resumes, if it is a resuming one.
  const std::shared_ptr<peer>& resumes() const noexcept {
    return resumes_;
  }

  /// The URI dialed (initiator), else empty.
  const std::string& uri() const noexcept {
    return uri_;
  }

  const std::string& scheme() const noexcept {
    return scheme_;
  }

  /// Closes the connection with `reason` (logged with the peer's name).
  /// Queued frames are flushed first (bounded by the transport) when
  /// `flush` is set.
  void close(const caf::error& reason, bool flush);

  /// Calls `f` once the handshake completed or failed (immediately if it
  /// already did).
  void on_ready(ready_callback f);

  // -- sending (any thread; defined next to the protocol they belong to) -------

  /// Serializes `what` for actor `receiver` on the remote node and sends it.
  /// Failures are reported to the sender of a request or counted as drops
  /// (message_protocol.cpp).
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

  /// Starts reporting the end of local actor `target` to the remote node
  /// (once per actor).
  void report_down_of(const caf::strong_actor_ptr& target);

  // -- peer_context --------------------------------------------------------------

  const caf::node_id& remote_id() const noexcept override {
    return remote_id_;
  }

  /// "'name' at uds:///a.sock (pid 42, uid 1000)" or the transport's name
  /// alone before the handshake.
  std::string display_name() const override;

  caf::error send_frame(frame_buffer frame) override {
    return send_frame(std::move(frame), false);
  }

  /// As send_frame; `essential` frames (responses, monitor, down, link,
  /// unlink) are kept past relay.resume-buffer while the connection is
  /// broken, since their loss would go unnoticed (session::send).
  caf::error send_frame(frame_buffer frame, bool essential);

  void close(const caf::error& reason) override {
    close(reason, false);
  }

  // -- connection_handler ------------------------------------------------------

  void on_frame(connection& conn, const frame_header& header,
                const std::byte* body) override;

  /// Wakes the actors this read's messages went to (io_unit).
  void on_frames_end(connection& conn) override;

  void on_closed(connection& conn, const caf::error& reason) override;

  // -- codec_context ------------------------------------------------------------

  void write_actor(wire_writer& ar, const caf::actor_control_block* x) override;

  caf::strong_actor_ptr read_actor(wire_reader& ar) override;

  /// Reads an actor reference that the protocol allows only to name an actor
  /// of the sending node (e.g. the remote party of a link); anything else is
  /// a protocol violation (wire_error), checked before any cast or lock.
  caf::strong_actor_ptr read_remote_actor(wire_reader& ar);

  /// Reads an actor reference that must name a local actor (tag
  /// receiver_node); returns it or null if it is not exported (anymore).
  /// Throws wire_error for any other tag.
  caf::strong_actor_ptr read_local_actor(wire_reader& ar);

  // -- properties --------------------------------------------------------------

  node_impl& node() noexcept {
    return node_;
  }

  route& current_route() noexcept {
    return *route_;
  }

  bool initiator() const noexcept {
    return initiator_;
  }

  /// Whether either side is a hidden node (node_config::hidden): the node
  /// raises no node events for this connection. An untrusted peer's claim
  /// is ignored. Valid after the handshake.
  bool hidden() const noexcept;

  /// Whether the remote may do everything (see trust_level).
  bool trusted() const noexcept {
    return trusted_;
  }

  /// Counts and logs (rate-limited) something refused from an untrusted
  /// remote; `what` says what, e.g. "a link frame".
  void refuse_untrusted(const std::string& what);

  uint64_t serial() const noexcept {
    return serial_;
  }

  state current_state() const noexcept {
    return state_.load();
  }

  /// A snapshot for node::peers().
  peer_info info() const;

  /// The connection's traffic so far (heartbeats count).
  connection::traffic_counters traffic() const noexcept {
    return conn_->traffic();
  }

  /// Whether reading is paused because the remote's delivered messages
  /// wait unprocessed past relay.max-inbound-bytes (its silence then means
  /// nothing).
  bool inbound_paused() const noexcept;

  /// The back-pressure budget of what arrives on this connection.
  const std::shared_ptr<inbound_budget>& budget_ptr() const noexcept {
    return budget_;
  }

  /// Bound on what a winner holds while the loser's retire is missing
  /// (see retire); past it the winner closes as a protocol violation.
  static constexpr size_t max_held_bytes = size_t{64} << 20;

  /// Sets the route this peer serves; called once by the node when the
  /// handshake completes, before the peer becomes established.
  void set_route(std::shared_ptr<route> r) {
    route_ = std::move(r);
  }

  /// The serial the initiator gave this connection (for tie-breaks).
  uint64_t initiator_serial() const noexcept {
    return initiator_ ? serial_ : remote_serial_;
  }

  // -- duplicate connections (retire.cpp) -----------------------------------------

  /// Retires this connection, which lost the tie-break to `winner` (another
  /// connection to the same node): sends a retire frame as its last frame,
  /// hands whatever is sent on it afterwards to the route's current peer,
  /// and has `winner` hold what arrives on it until the remote's retire
  /// arrives here, so that the remote's frames keep their order. Closes once
  /// both sides retired it. Closing it kills no proxies. Idempotent.
  void retire(const std::shared_ptr<peer>& winner);

  /// The remote sent its last frame on this connection.
  void on_remote_retire();

  /// True if this connection retired at least `bound` ago and the remote's
  /// retire is still missing (see node_impl::check_handshake).
  bool retire_overdue(std::chrono::steady_clock::duration bound) const;

  bool duplicate() const noexcept {
    return duplicate_;
  }

private:
  /// Runs the handler of an established connection's frame.
  void dispatch(const frame_header& header, const std::byte* body);

  /// Holds frames that arrive from now on (see retire).
  void hold();

  /// Dispatches the held frames in order and stops holding.
  void release();

  /// Closes once both sides retired this connection.
  void close_if_retired();

  /// If this connection served its node when it retired: moves what was
  /// queued for it to the winner and makes the winner serve the node.
  void hand_over();

  /// Nothing more arrives on this connection: the remote retired it
  /// (`remote_retired`, false if it had done so already) or it closed.
  /// Releases the winner and hands over. Returns false for a second retire.
  bool end_of_retired_input(bool remote_retired);

  struct handover_queue;

  // -- handshake.cpp ------------------------------------------------------------

  void handle_hello(const frame_header& header, const std::byte* body,
                    size_t size);

  /// Sends a reject frame with `reason`, then closes.
  void reject(const caf::error& reason);

  /// The hello of a resuming connection arrived (initiator: the remote's
  /// plain hello; acceptor: a hello with flag_resume). Returns what to
  /// finish the handshake with, or an error to reject with.
  caf::error handle_resuming_hello(const wire::resume_info* info);

  /// Initiator of a resuming connection: the frame after the remote's
  /// hello, a resume frame (or a reject).
  void handle_resume_reply(const frame_header& header, const std::byte* body);

  /// Finishes the handshake with `err` (none on success).
  void finish_handshake(const caf::error& err, std::shared_ptr<peer> use);

  // -- state --------------------------------------------------------------------

  node_impl& node_;
  connection_ptr conn_;
  const bool initiator_;
  const uint64_t serial_;
  const std::string uri_;
  const std::string scheme_;
  const bool trusted_;
  // Back-pressure on what the remote sends (message_protocol.cpp).
  const std::shared_ptr<inbound_budget> budget_;
  std::atomic<state> state_{state::handshaking};
  std::atomic<bool> duplicate_{false};

  // Duplicate connections (retire.cpp).
  std::atomic<bool> retired_{false};
  std::atomic<bool> remote_retired_{false};
  std::atomic<bool> holding_{false};
  // The connection calls on_frames_end (see on_frame); I/O thread.
  std::atomic<bool> frames_end_seen_{false};
  std::chrono::steady_clock::time_point retired_at_; // guarded by hold_mtx_
  mutable std::mutex hold_mtx_;
  std::deque<frame_buffer> held_;           // guarded by hold_mtx_
  size_t held_bytes_ = 0;                   // guarded by hold_mtx_
  std::weak_ptr<peer> release_on_retire_;   // guarded by hold_mtx_
  // Set once by retire(), before the successor can run; read by
  // hand_over() on I/O threads afterwards.
  std::shared_ptr<handover_queue> handover_;


  // Set once by the handshake, on the I/O thread, before state_ becomes
  // established; read-only afterwards.
  caf::node_id remote_id_;
  std::string remote_name_;
  uint64_t remote_serial_ = 0;
  std::shared_ptr<route> route_;
  caf::timestamp since_;

  // Sessions (resume.cpp). session_ is written on the I/O thread before
  // the peer is published (the handshake, or a resume before the route
  // points here) and only read afterwards, by any thread.
  std::shared_ptr<session> session_;
  bool remote_can_resume_ = false;  // set once by the handshake
  bool remote_hidden_ = false;      // set once by the handshake
  bool remote_probes_ = false;      // set once by the handshake
  // The token of the probe awaiting its answer (steady clock in ns plus
  // probe_offset_, odd), or 0.
  std::atomic<uint64_t> probe_token_{0};
  const uint64_t probe_offset_;
  latency_histogram rtt_;
  // Actor messages delivered from the remote and sent to it (peer_info).
  std::atomic<uint64_t> messages_in_{0};
  std::atomic<uint64_t> messages_out_{0};
  std::shared_ptr<peer> resumes_;   // set before start()
  bool awaiting_resume_ = false;    // I/O thread
  std::atomic<bool> closed_locally_{false};
  std::atomic<bool> goodbye_received_{false};

  mutable std::mutex mtx_;
  std::vector<ready_callback> ready_callbacks_;
  caf::error handshake_result_;
  bool handshake_done_ = false;
  // Weak: usually this peer itself, which must not keep itself alive.
  std::weak_ptr<peer> handshake_use_;
};

} // namespace relay
