#include "peer.hpp"

#include <cereal/types/array.hpp>

#include <caf/actor_system.hpp>

#include <cstring>
#include <random>

#include "inbound_budget.hpp"
#include "io_unit.hpp"
#include "node_impl.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "session.hpp"
#include "wire.hpp"

namespace relay {

peer_context::~peer_context() = default;

peer::peer(node_impl& node, connection_ptr conn, bool initiator,
           uint64_t serial, std::string uri, std::string scheme,
           trust_level trust)
  : node_(node),
    conn_(std::move(conn)),
    initiator_(initiator),
    serial_(serial),
    uri_(std::move(uri)),
    scheme_(std::move(scheme)),
    trusted_(trust == trust_level::trusted),
    budget_(std::make_shared<inbound_budget>(
      conn_, node.config().max_inbound_bytes, node.inbound_pauses)),
    probe_offset_(std::random_device{}() * uint64_t{0x9E3779B97F4A7C15}) {
  // nop
}

peer::~peer() = default;

bool peer::inbound_paused() const noexcept {
  return budget_->paused();
}

void peer::close(const caf::error& reason, bool flush) {
  closed_locally_ = true;
  auto st = state_.load();
  if (st == state::closed) {
    // A broken connection waiting to resume: closing it ends the session.
    if (session_ && session_->suspended())
      node_.give_up(*this, reason);
    return;
  }
  if (st == state::established && session_ && !duplicate_.load()) {
    // Tells the remote that this close is final: it reports the node down
    // at once instead of waiting for a resume.
    auto bye = begin_frame(0);
    finish_frame(bye, frame_kind::goodbye);
    conn_->send(std::move(bye));
    // The remote acknowledges what it reads until it reads the goodbye: a
    // close with those acks unread would reset the connection and could
    // discard frames still on their way to it.
    conn_->linger_on_close();
  }
  conn_->close(reason, flush);
}

std::string peer::display_name() const {
  if (state_.load() == state::handshaking && remote_name_.empty())
    return conn_->peer_name();
  return "'" + remote_name_ + "' at " + conn_->peer_name();
}

bool peer::hidden() const noexcept {
  // Not on an untrusted peer's say-so: it must not slip past node events.
  return (remote_hidden_ && trusted_) || node_.config().hidden;
}

peer_info peer::info() const {
  peer_info result;
  result.hidden = remote_hidden_ && trusted_;
  result.node = remote_id_;
  result.name = remote_name_;
  result.uri = uri_.empty() ? conn_->peer_name() : uri_;
  result.transport = scheme_;
  result.since = since_;
  auto t = conn_->traffic();
  result.frames_in = t.frames_in;
  result.frames_out = t.frames_out;
  result.bytes_in = t.bytes_in;
  result.bytes_out = t.bytes_out;
  result.queued_bytes = t.queued_bytes;
  result.inbound_bytes = budget_->in_flight();
  result.inbound_paused = budget_->paused();
  result.rtt = rtt_.read();
  result.messages_in = messages_in_.load(std::memory_order_relaxed);
  result.messages_out = messages_out_.load(std::memory_order_relaxed);
  return result;
}

caf::error peer::send_frame(frame_buffer frame, bool essential) {
  auto body = frame.size() - frame_header::size;
  if (body > node_.config().max_frame_size)
    return make_error(errc::frame_too_large,
                      "frame of " + std::to_string(body)
                        + " bytes exceeds the bound of "
                        + std::to_string(node_.config().max_frame_size)
                        + " bytes (relay.max-frame-size)");
  if (session_)
    return session_->send(std::move(frame), essential);
  return conn_->send(std::move(frame));
}

// -- codec_context --------------------------------------------------------------

void peer::write_actor(wire_writer& ar, const caf::actor_control_block* x) {
  if (x == nullptr) {
    ar(static_cast<uint8_t>(wire::ref_tag::null));
    return;
  }
  const auto& nid = x->node();
  auto aid = static_cast<uint64_t>(x->id());
  if (nid == node_.system().node()) {
    // The remote node may refer back to this actor by id.
    node_.export_actor(x);
    ar(static_cast<uint8_t>(wire::ref_tag::sender_node), aid);
  } else if (nid == remote_id_) {
    ar(static_cast<uint8_t>(wire::ref_tag::receiver_node), aid);
  } else {
    if (nid->implementation_id() != caf::node_id::default_data::class_id)
      throw wire_error("cannot send a reference to an actor of node "
                       + caf::to_string(nid));
    const auto& data = static_cast<const caf::node_id::default_data&>(*nid);
    ar(static_cast<uint8_t>(wire::ref_tag::other_node), data.process_id(),
       data.host_id(), aid);
  }
}

caf::strong_actor_ptr peer::read_actor(wire_reader& ar) {
  uint8_t tag = 0;
  ar(tag);
  uint64_t aid = 0;
  switch (static_cast<wire::ref_tag>(tag)) {
    case wire::ref_tag::null:
      return nullptr;
    case wire::ref_tag::sender_node:
      ar(aid);
      return node_.proxies().get_or_put(remote_id_, aid);
    case wire::ref_tag::receiver_node:
      ar(aid);
      return node_.find_exported(aid);
    case wire::ref_tag::other_node: {
      uint32_t pid = 0;
      caf::node_id::default_data::host_id_type host;
      ar(pid, host, aid);
      if (!caf::node_id::default_data::valid(host))
        throw wire_error("invalid node id in an actor reference");
      auto nid = caf::make_node_id(pid, host);
      if (nid == node_.system().node())
        return node_.find_exported(aid);
      return node_.proxies().get_or_put(nid, aid);
    }
  }
  throw wire_error("invalid actor reference tag " + std::to_string(tag));
}

caf::strong_actor_ptr peer::read_remote_actor(wire_reader& ar) {
  uint8_t tag = 0;
  ar(tag);
  if (tag != static_cast<uint8_t>(wire::ref_tag::sender_node))
    throw wire_error("actor reference with tag " + std::to_string(tag)
                     + " where only an actor of the sending node is allowed");
  uint64_t aid = 0;
  ar(aid);
  return node_.proxies().get_or_put(remote_id_, aid);
}

caf::strong_actor_ptr peer::read_local_actor(wire_reader& ar) {
  uint8_t tag = 0;
  ar(tag);
  if (tag != static_cast<uint8_t>(wire::ref_tag::receiver_node))
    throw wire_error("actor reference with tag " + std::to_string(tag)
                     + " where only an actor of the receiving node is "
                       "allowed");
  uint64_t aid = 0;
  ar(aid);
  return node_.find_exported(aid);
}

// -- receiving ------------------------------------------------------------------

void peer::on_frame(connection&, const frame_header& header,
                    const std::byte* body) {
  // Receivers are woken in on_frames_end, once per read; only for a
  // transport that was seen to call it (one that never does would leave
  // them asleep), so the first read wakes per message.
  if (frames_end_seen_.load(std::memory_order_relaxed))
    io_unit::open();
  auto st = state_.load();
  if (st == state::handshaking) {
    if (awaiting_resume_)
      handle_resume_reply(header, body);
    else
      handle_hello(header, body, header.length);
    return;
  }
  if (st == state::closed)
    return;
  if (holding_.load()) {
    std::unique_lock<std::mutex> guard{hold_mtx_};
    if (holding_.load()) {
      auto size = frame_header::size + size_t{header.length};
      if (held_bytes_ + size > max_held_bytes) {
        guard.unlock();
        close(make_error(errc::protocol_error,
                         "more than " + std::to_string(max_held_bytes)
                           + " bytes arrived while the duplicate connection "
                             "to this node was not retired"));
        return;
      }
      frame_buffer copy(size);
      header.write(copy.data());
      if (header.length > 0)
        std::memcpy(copy.data() + frame_header::size, body, header.length);
      held_bytes_ += size;
      held_.push_back(std::move(copy));
      return;
    }
  }
  dispatch(header, body);
}

namespace {

// The frame kinds an untrusted peer may send (trust_level::untrusted):
// messages (whose content message_protocol.cpp checks), monitors and the
// DOWN notices they ask for, lookups, heartbeats, probes, retires. Not links (a
// link lets the peer's exit stop our actor) nor module frames.
bool untrusted_may_send(frame_kind kind) {
  switch (kind) {
    case frame_kind::message:
    case frame_kind::monitor:
    case frame_kind::down:
    case frame_kind::lookup:
    case frame_kind::lookup_reply:
    case frame_kind::heartbeat:
    case frame_kind::retire:
    case frame_kind::ack:
    case frame_kind::resume:
    case frame_kind::goodbye:
    case frame_kind::probe:
    case frame_kind::probe_reply:
      return true;
    default:
      return false;
  }
}

} // namespace

void peer::refuse_untrusted(const std::string& what) {
  ++node_.untrusted_drops;
  node_.drop_log().log(log_level::warning, "untrusted:" + display_name(),
                       "refused " + what + " from untrusted peer "
                         + display_name());
}

void peer::dispatch(const frame_header& header, const std::byte* body) {
  auto kind = static_cast<uint8_t>(header.kind);
  if (header.version != frame_header::current_version) {
    close(make_error(errc::protocol_error,
                     "frame with protocol version "
                       + std::to_string(header.version) + " after handshake"));
    return;
  }
  if (header.flags != 0) {
    close(make_error(errc::protocol_error,
                     "frame of kind " + std::to_string(kind)
                       + " with reserved flags "
                       + std::to_string(header.flags) + " (must be 0)"));
    return;
  }
  // Counted as dispatched even if refused below: the remote must not send
  // it again after a resume.
  if (session_ && session::sequenced(header.kind))
    if (auto n = session_->on_dispatched(frame_header::size + header.length);
        n != 0 && !retired_.load())
      conn_->send(session::count_frame(frame_kind::ack, n));
  if (!trusted_ && !untrusted_may_send(header.kind)) {
    refuse_untrusted(node_.frames().name_of(kind) + " frame (kind "
                     + std::to_string(kind) + ")");
    return;
  }
  auto handler = node_.frames().find(kind);
  if (handler == nullptr) {
    close(make_error(errc::protocol_error,
                     header.kind == frame_kind::hello
                         || header.kind == frame_kind::reject
                       ? std::string{"handshake frame after the handshake"}
                       : "unknown frame kind " + std::to_string(kind)));
    return;
  }
  wire_reader in{body, header.length, this};
  try {
    (*handler)(*this, in);
  } catch (std::exception& ex) {
    close(make_error(errc::protocol_error,
                     "malformed " + node_.frames().name_of(kind)
                       + " frame (kind " + std::to_string(kind)
                       + "): " + ex.what()));
  }
}

// -- closing --------------------------------------------------------------------

void peer::on_frames_end(connection&) {
  frames_end_seen_.store(true, std::memory_order_relaxed);
  io_unit::close();
}

void peer::on_closed(connection&, const caf::error& reason) {
  io_unit::close(); // nothing stays unwoken if a transport skipped the end
  auto was = state_.exchange(state::closed);
  // Count before logging, so that whoever sees the line sees the count.
  if (is(reason, errc::protocol_error) || is(reason, errc::frame_too_large))
    ++node_.protocol_errors;
  if (was == state::handshaking)
    ++node_.rejected_peers;
  // A break that may resume keeps every unacknowledged frame for resending
  // (they count as dropped only if the session is given up).
  bool may_resume = was == state::established && may_resume_after(reason);
  if (auto unsent = may_resume ? 0 : conn_->unsent_frames(); unsent > 0) {
    node_.dropped_messages += unsent;
    log(log_level::warning, std::to_string(unsent) + " frames queued for "
                              + display_name()
                              + " were not sent before the connection "
                                "closed; counted as dropped messages");
  }
  if (is(reason, errc::connection_closed) || duplicate_)
    log(log_level::info, "connection to " + display_name() + " closed: "
                           + describe(reason));
  else if (may_resume)
    log(log_level::info, "connection to " + display_name() + " broke: "
                           + describe(reason));
  else
    log(log_level::warning, "closed connection to " + display_name() + ": "
                              + describe(reason));
  finish_handshake(reason, nullptr);
  // Nothing more arrives here: as if the remote's retire had come.
  end_of_retired_input(false);
  node_.on_peer_closed(*this, reason, may_resume);
  // The connection this one resumed is done with (no chain of them).
  resumes_.reset();
}

} // namespace relay
