// The handshake half of relay::peer: hello out, hello (or reject) in, then
// the node decides which connection serves the remote node.

#include <chrono>

#include <cereal/types/array.hpp>
#include <cereal/types/string.hpp>

#include <caf/actor_system.hpp>

#include "node_impl.hpp"
#include "peer.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "session.hpp"
#include "wire.hpp"

namespace relay {

void peer::start() {
  // The hello goes out before reading starts: once the remote's hello is
  // read, this connection may send other frames (e.g. retire), which must
  // not overtake it.
  wire::hello hello;
  const auto& local = node_.system().node();
  const auto& data = static_cast<const caf::node_id::default_data&>(*local);
  hello.pid = data.process_id();
  hello.incarnation = data.host_id();
  hello.node_name = node_.name();
  hello.serial = serial_;
  // Not for untrusted peers: a session holds up to relay.resume-buffer
  // for its peer, and a resume takes over a route.
  if (trusted_ && node_.can_resume(initiator_, uri_, scheme_))
    hello.flags |= wire::hello::flag_can_resume;
  if (resumes_)
    hello.flags |= wire::hello::flag_resume;
  if (node_.config().hidden)
    hello.flags |= wire::hello::flag_hidden;
  hello.flags |= wire::hello::flag_probe | wire::hello::flag_bulk;
  auto buf = begin_frame();
  wire_writer out{buf};
  out(hello);
  if (resumes_) {
    wire::resume_info info;
    info.serial = resumes_->current_session()->token();
    info.dispatched = resumes_->current_session()->dispatched();
    out(info);
  }
  finish_frame(buf, frame_kind::hello);
  send_frame(std::move(buf));
  conn_->start(shared_from_this());
}

void peer::on_ready(ready_callback f) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (!handshake_done_) {
    ready_callbacks_.push_back(std::move(f));
    return;
  }
  auto err = handshake_result_;
  auto use = handshake_use_.lock();
  guard.unlock();
  if (!err && !use)
    err = make_error(errc::connection_closed,
                     "connection to " + display_name() + " is closed");
  f(err, use);
}

void peer::finish_handshake(const caf::error& err, std::shared_ptr<peer> use) {
  std::vector<ready_callback> callbacks;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (handshake_done_)
      return;
    handshake_done_ = true;
    handshake_result_ = err;
    handshake_use_ = use;
    callbacks.swap(ready_callbacks_);
  }
  for (auto& f : callbacks)
    f(err, use);
}

void peer::handle_hello(const frame_header& header, const std::byte* body,
                        size_t size) {
  wire_reader in{body, size};
  wire::resume_info resume_info;
  bool has_resume_info = false;
  try {
    if (header.kind == frame_kind::reject) {
      wire::reject rej;
      in(rej);
      close(make_error(wire::reject_code_to_errc(rej.code),
                       conn_->peer_name() + " rejected the connection: "
                         + rej.reason));
      return;
    }
    if (header.version != frame_header::current_version) {
      reject(make_error(errc::version_mismatch,
                        conn_->peer_name() + " speaks protocol version "
                          + std::to_string(header.version)
                          + ", this node speaks version "
                          + std::to_string(frame_header::current_version)));
      return;
    }
    if (header.kind != frame_kind::hello) {
      reject(make_error(errc::handshake_failed,
                        "expected a hello frame from " + conn_->peer_name()
                          + ", got frame kind "
                          + std::to_string(static_cast<int>(header.kind))));
      return;
    }
    if (header.flags != 0)
      throw wire_error("reserved header flags "
                       + std::to_string(header.flags) + " (must be 0)");
    wire::hello hello;
    in(hello);
    if ((hello.flags & ~wire::hello::known_flags) != 0)
      throw wire_error("reserved hello flags "
                       + std::to_string(hello.flags
                                        & ~wire::hello::known_flags)
                       + " (must be 0)");
    if ((hello.flags & wire::hello::flag_resume) != 0) {
      if (initiator_)
        throw wire_error("a resuming hello from the accepting side");
      in(resume_info);
      has_resume_info = true;
    }
    if (in.remaining() != 0)
      throw wire_error("trailing bytes after hello");
    if (hello.node_name.size() > wire::hello::max_name_size)
      throw wire_error("node name longer than "
                       + std::to_string(wire::hello::max_name_size)
                       + " bytes");
    auto nid = caf::make_node_id(hello.pid, hello.incarnation);
    if (!nid || !caf::node_id::default_data::valid(hello.incarnation))
      throw wire_error("invalid node id");
    remote_id_ = std::move(nid);
    remote_name_ = hello.node_name;
    remote_serial_ = hello.serial;
    remote_can_resume_ = (hello.flags & wire::hello::flag_can_resume) != 0;
    remote_hidden_ = (hello.flags & wire::hello::flag_hidden) != 0;
    remote_probes_ = (hello.flags & wire::hello::flag_probe) != 0;
    if ((hello.flags & wire::hello::flag_bulk) != 0)
      conn_->allow_bulk();
  } catch (std::exception& ex) {
    reject(make_error(errc::handshake_failed,
                      "malformed hello from " + conn_->peer_name() + ": "
                        + ex.what()));
    return;
  }
  since_ = caf::make_timestamp();
  if (resumes_ || has_resume_info) {
    if (auto err = handle_resuming_hello(has_resume_info ? &resume_info
                                                         : nullptr))
      reject(err);
    return;
  }
  // Before the node publishes this peer: every frame sent through it is
  // numbered.
  if (trusted_ && remote_can_resume_
      && node_.can_resume(initiator_, uri_, scheme_)) {
    session_ = std::make_shared<session>(node_.config().resume_buffer,
                                         initiator_serial());
    session_->attach(conn_);
  }
  auto use = node_.on_handshake(shared_from_this());
  if (!use) {
    reject(use.error());
    return;
  }
  state_ = state::established;
  log(log_level::info, "connected to " + display_name());
  finish_handshake(caf::none, *use);
}

void peer::reject(const caf::error& reason) {
  wire::reject rej;
  rej.code = reason.category() == error_category_atom ? reason.code() : 0;
  rej.reason = describe(reason);
  auto buf = begin_frame();
  wire_writer out{buf};
  out(rej);
  finish_frame(buf, frame_kind::reject);
  conn_->send(std::move(buf));
  conn_->close(reason, true);
}

} // namespace relay
