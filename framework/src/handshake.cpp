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
  auto buf = begin_frame();
  wire_writer out{buf};
  out(hello);
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
    if (in.remaining() != 0)
      throw wire_error("trailing bytes after hello");
    if (hello.flags != 0)
      throw wire_error("reserved hello flags " + std::to_string(hello.flags)
                       + " (must be 0)");
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
  } catch (std::exception& ex) {
    reject(make_error(errc::handshake_failed,
                      "malformed hello from " + conn_->peer_name() + ": "
                        + ex.what()));
    return;
  }
  since_ = caf::make_timestamp();
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
