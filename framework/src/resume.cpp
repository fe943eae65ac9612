// Sessions that survive a broken connection, the peer's half: numbering
// and acknowledging frames (session.hpp), the goodbye that marks a close as
// final, and the resuming handshake. The node's half (suspending a route,
// redialing, giving up) is in resume_node.cpp; docs/reconnect.md has the
// timeline.
//
// The resuming handshake, after connection C1 between initiator I and
// acceptor A broke:
//
//   1. I dials the same URI and sends a hello with flag_resume followed by
//      resume_info {C1's serial, frames of the session I dispatched}.
//   2. A finds its suspended session of C1, drops what I has, sends a
//      resume frame {frames A dispatched}, then every frame I lacks, then
//      whatever its actors send from then on. If A has no such session
//      (it gave up, restarted, or the count is impossible), it rejects
//      with session_lost; I gives up too. If A has not yet seen C1 break,
//      it closes C1 as broken and rejects with resume_pending; I retries.
//   3. I reads A's hello (same node id, else A restarted: session_lost)
//      and the resume frame, drops what A has, and resends the rest.

#include <fstream>
#include <sstream>

#include <sys/types.h>

#include "node_impl.hpp"
#include "peer.hpp"
#include "protocols.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "session.hpp"
#include "wire.hpp"

namespace relay {

namespace {

// Whether process `pid` of this machine still runs: not gone, not a zombie,
// not exiting (PF_EXITING is set before the kernel closes the process's
// sockets, so a peer killed with SIGKILL is never mistaken for alive).
bool process_alive(uint32_t pid) {
  if (pid == 0)
    return true;
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  if (!std::getline(in, line))
    return false;
  // "pid (comm) state ppid pgrp session tty_nr tpgid flags ..."; comm may
  // hold spaces and parentheses, so read from the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return true;
  std::istringstream rest{line.substr(close + 1)};
  std::string state;
  long skip = 0;
  unsigned long flags = 0;
  rest >> state >> skip >> skip >> skip >> skip >> skip >> flags;
  constexpr unsigned long pf_exiting = 0x4;
  return !(state == "Z" || state == "X" || state == "x"
           || (rest && (flags & pf_exiting) != 0));
}

} // namespace

void peer::resume_of(std::shared_ptr<peer> broken) {
  resumes_ = std::move(broken);
}

std::shared_ptr<session> peer::current_session() const {
  return session_;
}

bool peer::may_resume_after(const caf::error& reason) const {
  if (!session_ || closed_locally_.load() || goodbye_received_.load()
      || duplicate_.load() || retired_.load())
    return false;
  if (is(reason, errc::protocol_error) || is(reason, errc::frame_too_large)
      || is(reason, errc::heartbeat_timeout))
    return false;
  // A uds peer runs on this machine: if its process is gone, so is the
  // node, at once (as before sessions existed), whatever the timeout.
  if (scheme_ == "uds") {
    const auto& data = static_cast<const caf::node_id::default_data&>(
      *remote_id_);
    if (!process_alive(data.process_id()))
      return false;
  }
  return true;
}

bool peer::accepts_frames() const {
  if (state_.load() != state::closed || retired_.load())
    return true;
  return session_ && !session_->ended();
}

uint64_t peer::queued_bytes() const {
  if (state_.load() != state::closed || !session_)
    return conn_->traffic().queued_bytes;
  auto carrier = session_->carrier();
  return carrier ? carrier->traffic().queued_bytes : 0;
}

void peer::close_as_broken(const caf::error& reason) {
  conn_->close(reason, false);
}

void peer::send_ack_if_due() {
  // Not on a retired connection: its frames pass to the one that replaced
  // it, whose session has other numbers.
  if (state_.load() != state::established || !session_ || retired_.load())
    return;
  if (auto n = session_->ack_due())
    conn_->send(session::count_frame(frame_kind::ack, n));
}

void peer::on_ack(uint64_t count) {
  if (!session_)
    throw wire_error("ack on a connection without a session");
  if (auto err = session_->on_ack(count))
    close(err);
}

void peer::on_goodbye() {
  goodbye_received_ = true;
}

caf::error peer::handle_resuming_hello(const wire::resume_info* info) {
  if (info == nullptr) {
    // Initiator: the remote's hello arrived on the resuming connection.
    if (remote_id_ != resumes_->remote_id())
      return make_error(errc::session_lost,
                        display_name() + " restarted (its node id changed): "
                                         "the session with the old "
                                         "incarnation is gone");
    if (!remote_can_resume_)
      return make_error(errc::session_lost,
                        display_name() + " no longer resumes sessions");
    // The resume frame comes next; the handshake ends with it.
    awaiting_resume_ = true;
    return caf::none;
  }
  // Acceptor: a hello with flag_resume.
  if (auto err = node_.resume_session(shared_from_this(), *info))
    return err;
  state_ = state::established;
  finish_handshake(caf::none, shared_from_this());
  return caf::none;
}

void peer::handle_resume_reply(const frame_header& header,
                               const std::byte* body) {
  wire_reader in{body, header.length};
  try {
    if (header.kind == frame_kind::reject) {
      wire::reject rej;
      in(rej);
      auto err = make_error(wire::reject_code_to_errc(rej.code),
                            conn_->peer_name()
                              + " refused to resume the session: "
                              + rej.reason);
      close(err);
      finish_handshake(err, nullptr);
      return;
    }
    if (header.kind != frame_kind::resume)
      throw wire_error("expected a resume frame, got frame kind "
                       + std::to_string(static_cast<int>(header.kind)));
    uint64_t remote_dispatched = 0;
    in(remote_dispatched);
    if (in.remaining() != 0)
      throw wire_error("trailing bytes after resume");
    if (auto err = node_.complete_resume(shared_from_this(),
                                         remote_dispatched)) {
      close(err);
      finish_handshake(err, nullptr);
      return;
    }
    awaiting_resume_ = false;
    resumes_.reset();
    finish_handshake(caf::none, shared_from_this());
  } catch (std::exception& ex) {
    auto err = make_error(errc::protocol_error,
                          "malformed resume from " + conn_->peer_name() + ": "
                            + ex.what());
    close(err);
    finish_handshake(err, nullptr);
  }
}

caf::expected<uint64_t>
peer::adopt_session(const std::shared_ptr<peer>& broken,
                    uint64_t remote_dispatched) {
  auto s = broken->session_;
  if (!s)
    return make_error(errc::session_lost, "the connection had no session");
  frame_buffer first;
  if (!initiator_)
    first = session::count_frame(frame_kind::resume, s->dispatched());
  auto resent = s->resume(conn_, remote_dispatched, std::move(first));
  if (!resent)
    return resent;
  session_ = std::move(s);
  route_ = broken->route_;
  state_ = state::established;
  return resent;
}

caf::error add_session_protocol(frame_table& table) {
  auto read_count = [](wire_reader& in, const char* what) {
    uint64_t n = 0;
    in(n);
    if (in.remaining() != 0)
      throw wire_error(std::string{"trailing bytes after "} + what);
    return n;
  };
  if (auto err = table.add(static_cast<uint8_t>(frame_kind::ack), "ack",
                           [read_count](peer_context& p, wire_reader& in) {
                             static_cast<peer&>(p).on_ack(
                               read_count(in, "ack"));
                           }))
    return err;
  if (auto err = table.add(static_cast<uint8_t>(frame_kind::resume), "resume",
                           [](peer_context&, wire_reader&) {
                             // Only the first frame of a resuming
                             // connection (handle_resume_reply).
                             throw wire_error("resume frame outside a "
                                              "resuming handshake");
                           }))
    return err;
  return table.add(static_cast<uint8_t>(frame_kind::goodbye), "goodbye",
                   [](peer_context& p, wire_reader& in) {
                     if (in.remaining() != 0)
                       throw wire_error("goodbye with a body");
                     static_cast<peer&>(p).on_goodbye();
                   });
}

} // namespace relay
