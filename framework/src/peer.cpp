#include "peer.hpp"

#include <cxxabi.h>

#include <cereal/types/array.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/attachable.hpp>
#include <caf/exit_reason.hpp>
#include <caf/message_builder.hpp>
#include <caf/type_nr.hpp>

#include "node_impl.hpp"
#include "io_unit.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "remote_proxy.hpp"
#include "wire.hpp"

namespace relay {

namespace {

std::string type_label(const caf::rtti_pair& type) {
  if (type.first != 0)
    return caf::numbered_type_names[type.first - 1];
  if (type.second == nullptr)
    return "<unknown type>";
  int status = 0;
  char* demangled =
    abi::__cxa_demangle(type.second->name(), nullptr, nullptr, &status);
  std::string result = status == 0 && demangled ? demangled : type.second->name();
  free(demangled);
  return result;
}

/// Tells the remote node when a local actor it monitors ends. Identified by
/// the peer it reports to, so the peer can detach it when it closes.
class down_reporter : public caf::attachable {
public:
  down_reporter(std::weak_ptr<peer> target, caf::actor_id aid)
    : target_(std::move(target)), aid_(aid) {
    // nop
  }

  void actor_exited(const caf::error& reason, caf::execution_unit*) override {
    if (auto p = target_.lock())
      p->send_down(aid_, reason);
  }

  bool matches(const token& what) override {
    return what.subtype == token::anonymous && what.ptr == tag();
  }

  const void* tag() const {
    return target_tag_;
  }

  void set_tag(const void* x) {
    target_tag_ = x;
  }

private:
  std::weak_ptr<peer> target_;
  caf::actor_id aid_;
  const void* target_tag_ = nullptr;
};

bool is_quiet_close(const caf::error& reason) {
  return is(reason, errc::connection_closed);
}

} // namespace

void route::add_pending(caf::actor_id sender, uint64_t response_id,
                        caf::weak_actor_ptr who) {
  std::lock_guard<std::mutex> guard{mtx_};
  pending_.emplace(pending_key{sender, response_id}, std::move(who));
}

void route::erase_pending(caf::actor_id sender, uint64_t response_id) {
  std::lock_guard<std::mutex> guard{mtx_};
  pending_.erase(pending_key{sender, response_id});
}

void route::fail_pending(const caf::error& reason) {
  decltype(pending_) pending;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    pending.swap(pending_);
  }
  for (auto& [key, weak] : pending)
    if (auto sender = caf::actor_cast<caf::strong_actor_ptr>(weak))
      sender->enqueue(nullptr, caf::message_id{key.second},
                      caf::make_message(reason), nullptr);
}

peer::peer(node_impl& node, connection_ptr conn, bool initiator,
           uint64_t serial)
  : node_(node), conn_(std::move(conn)), initiator_(initiator),
    serial_(serial) {
  // nop
}

peer::~peer() = default;

void peer::start() {
  conn_->start(shared_from_this());
  wire::hello hello;
  const auto& local = node_.system().node();
  const auto& data = static_cast<const caf::node_id::default_data&>(*local);
  hello.pid = data.process_id();
  hello.incarnation = data.host_id();
  hello.node_name = node_.name();
  hello.serial = serial_;
  auto buf = wire::begin_frame();
  wire_writer out{buf};
  out(hello);
  wire::finish_frame(buf, frame_kind::hello);
  send_frame(std::move(buf));
}

void peer::close(const caf::error& reason) {
  conn_->close(reason);
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

std::string peer::display_name() const {
  if (state_.load() == state::handshaking && remote_name_.empty())
    return conn_->peer_name();
  return "'" + remote_name_ + "' at " + conn_->peer_name();
}

// -- sending ------------------------------------------------------------------

caf::error peer::send_frame(frame_buffer frame) {
  auto body = frame.size() - frame_header::size;
  if (body > node_.config().max_frame_size)
    return make_error(errc::frame_too_large,
                      "frame of " + std::to_string(body)
                        + " bytes exceeds the bound of "
                        + std::to_string(node_.config().max_frame_size)
                        + " bytes (relay.max-frame-size)");
  return conn_->send(std::move(frame));
}

void peer::bounce(caf::mailbox_element& what, const caf::error& reason,
                  caf::execution_unit* ctx) {
  if (what.mid.is_request() && what.sender)
    what.sender->enqueue(nullptr, what.mid.response_id(),
                         caf::make_message(reason), ctx);
}

void peer::send_message(caf::actor_id receiver, caf::mailbox_element& what,
                        caf::execution_unit* ctx) {
  auto fail = [&](const caf::error& reason) {
    if (what.mid.is_request() && what.sender) {
      bounce(what, reason, ctx);
    } else {
      ++node_.dropped_messages;
      log(log_level::warning, "dropped message to actor "
                                + std::to_string(receiver) + " on "
                                + display_name() + ": " + describe(reason));
    }
  };
  if (state_.load() == state::closed) {
    fail(make_error(errc::node_unreachable,
                    "connection to " + display_name() + " is closed"));
    return;
  }
  auto buf = wire::begin_frame(128);
  const auto& content = what.content();
  try {
    wire_writer out{buf, this};
    out(static_cast<uint64_t>(receiver));
    write_actor(out, what.sender.get());
    out(static_cast<uint64_t>(what.mid.integer_value()));
    out(cereal::make_size_tag(static_cast<uint64_t>(what.stages.size())));
    for (auto& stage : what.stages)
      write_actor(out, stage.get());
    auto n = content.size();
    out(cereal::make_size_tag(static_cast<uint64_t>(n)));
    for (size_t i = 0; i < n; ++i) {
      auto type = content.type(i);
      auto info = node_.messages().find(type);
      if (info == nullptr) {
        fail(make_error(errc::unregistered_type,
                        "cannot send a " + type_label(type) + " to "
                          + display_name()
                          + ": type is not registered "
                            "(node_config::add_message_type)"));
        return;
      }
      out(info->id);
      info->save(out, content.get(i));
    }
  } catch (std::exception& ex) {
    fail(make_error(errc::invalid_argument,
                    std::string{"cannot serialize message: "} + ex.what()));
    return;
  }
  wire::finish_frame(buf, frame_kind::message);
  // Remember requests so that a lost connection fails them at once.
  bool track = what.mid.is_request() && what.sender
               && what.sender->node() == node_.system().node();
  auto response_id = what.mid.response_id().integer_value();
  if (track)
    route_->add_pending(what.sender->id(), response_id,
                        caf::actor_cast<caf::weak_actor_ptr>(what.sender));
  if (auto err = send_frame(std::move(buf))) {
    if (track)
      route_->erase_pending(what.sender->id(), response_id);
    fail(err);
  }
}

void peer::send_monitor(caf::actor_id aid) {
  auto buf = wire::begin_frame(8);
  wire_writer out{buf};
  out(static_cast<uint64_t>(aid));
  wire::finish_frame(buf, frame_kind::monitor);
  send_frame(std::move(buf));
}

void peer::send_down(caf::actor_id aid, const caf::error& reason) {
  auto buf = wire::begin_frame(32);
  wire_writer out{buf, this};
  out(static_cast<uint64_t>(aid), reason);
  wire::finish_frame(buf, frame_kind::down);
  send_frame(std::move(buf));
}

void peer::send_link(frame_kind kind, caf::actor_control_block* local,
                     caf::actor_id remote) {
  // Runs inside the critical sections of both actors (add_backlink); the
  // frame goes out now, so it precedes anything `local` sends or reports
  // afterwards (a DOWN frame included).
  auto buf = wire::begin_frame(32);
  wire_writer out{buf, this};
  write_actor(out, local);
  out(static_cast<uint64_t>(remote));
  wire::finish_frame(buf, kind);
  send_frame(std::move(buf));
}

caf::error peer::send_lookup(uint64_t request_id, const std::string& name) {
  auto buf = wire::begin_frame(16 + name.size());
  wire_writer out{buf};
  out(request_id, name);
  wire::finish_frame(buf, frame_kind::lookup);
  return send_frame(std::move(buf));
}

void peer::send_error_response(caf::strong_actor_ptr sender,
                               caf::message_id mid, caf::error reason) {
  if (sender)
    sender->enqueue(nullptr, mid.response_id(),
                    caf::make_message(std::move(reason)), nullptr);
}

// -- codec_context --------------------------------------------------------------

void peer::write_actor(wire_writer& ar, const caf::actor_control_block* x) {
  if (x == nullptr) {
    ar(static_cast<uint8_t>(wire::ref_tag::null));
    return;
  }
  const auto& nid = x->node();
  auto aid = static_cast<uint64_t>(x->id());
  auto& sys = node_.system();
  if (nid == sys.node()) {
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
  auto& sys = node_.system();
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
      auto nid = caf::make_node_id(pid, host);
      if (nid == sys.node())
        return node_.find_exported(aid);
      if (nid == remote_id_)
        return node_.proxies().get_or_put(remote_id_, aid);
      return node_.proxies().get_or_put(nid, aid);
    }
  }
  throw wire_error("invalid actor reference tag " + std::to_string(tag));
}

// -- receiving ------------------------------------------------------------------

void peer::on_frame(connection&, const frame_header& header,
                    const std::byte* body) {
  if (state_.load() == state::handshaking) {
    handle_hello(header, body, header.length);
    return;
  }
  if (state_.load() == state::closed)
    return;
  if (header.version != frame_header::current_version) {
    close(make_error(errc::protocol_error,
                     "frame with protocol version "
                       + std::to_string(header.version) + " after handshake"));
    return;
  }
  wire_reader in{body, header.length, this};
  try {
    switch (header.kind) {
      case frame_kind::message:
        handle_message(in);
        break;
      case frame_kind::monitor:
        handle_monitor(in);
        break;
      case frame_kind::down:
        handle_down(in);
        break;
      case frame_kind::link:
      case frame_kind::unlink:
        handle_link(header.kind, in);
        break;
      case frame_kind::lookup:
        handle_lookup(in);
        break;
      case frame_kind::lookup_reply:
        handle_lookup_reply(in);
        break;
      case frame_kind::hello:
      case frame_kind::reject:
        close(make_error(errc::protocol_error,
                         "handshake frame after the handshake"));
        return;
      default:
        close(make_error(errc::protocol_error,
                         "unknown frame kind "
                           + std::to_string(static_cast<int>(header.kind))));
        return;
    }
  } catch (std::exception& ex) {
    close(make_error(errc::protocol_error,
                     std::string{"malformed frame of kind "}
                       + std::to_string(static_cast<int>(header.kind)) + ": "
                       + ex.what()));
  }
}

void peer::handle_hello(const frame_header& header, const std::byte* body,
                        size_t size) {
  wire_reader in{body, size};
  try {
    if (header.kind == frame_kind::reject) {
      wire::reject rej;
      in(rej);
      auto code = rej.code >= 1 && rej.code <= static_cast<uint8_t>(
                                                 errc::invalid_argument)
                    ? static_cast<errc>(rej.code)
                    : errc::handshake_failed;
      close(make_error(code, conn_->peer_name() + " rejected the connection: "
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
    wire::hello hello;
    in(hello);
    if (in.remaining() != 0)
      throw wire_error("trailing bytes after hello");
    if (hello.node_name.size() > 256)
      throw wire_error("node name longer than 256 bytes");
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
  auto buf = wire::begin_frame();
  wire_writer out{buf};
  out(rej);
  wire::finish_frame(buf, frame_kind::reject);
  conn_->send(std::move(buf));
  conn_->close(reason, true);
}

void peer::handle_message(wire_reader& in) {
  uint64_t receiver = 0;
  in(receiver);
  auto sender = read_actor(in);
  uint64_t mid_value = 0;
  in(mid_value);
  // Only ordinary and urgent messages cross the wire; stream categories and
  // the "answered" bit are local to an actor system.
  auto category = (mid_value & caf::message_id::category_flag_mask)
                  >> caf::message_id::category_offset;
  if (category != caf::message_id::normal_message_category
      && category != caf::message_id::urgent_message_category)
    throw wire_error("message id with unsupported category "
                     + std::to_string(category));
  mid_value &= ~caf::message_id::answered_flag_mask;
  caf::message_id mid{mid_value};
  uint64_t stage_count = 0;
  in(cereal::make_size_tag(stage_count));
  caf::mailbox_element::forwarding_stack stages;
  stages.reserve(stage_count);
  for (uint64_t i = 0; i < stage_count; ++i)
    stages.emplace_back(read_actor(in));
  uint64_t count = 0;
  in(cereal::make_size_tag(count));
  caf::message msg;
  auto next_type = [&]() -> const message_type_info* {
    uint64_t type_id = 0;
    in(type_id);
    auto info = node_.messages().find(type_id);
    if (info == nullptr) {
      ++node_.unknown_type_ids;
      char hex[32];
      snprintf(hex, sizeof(hex), "0x%016llx",
               static_cast<unsigned long long>(type_id));
      auto reason = make_error(errc::unknown_type_id,
                               std::string{"message type id "} + hex
                                 + " from " + display_name()
                                 + " is not registered on node '"
                                 + node_.name() + "'");
      if (mid.is_request()) {
        send_error_response(sender, mid, reason);
      } else {
        ++node_.dropped_messages;
        log(log_level::warning, "dropped message: " + describe(reason));
      }
    }
    return info;
  };
  if (count == 1) {
    auto info = next_type();
    if (info == nullptr)
      return;
    msg = info->load_single(in);
  } else if (count > 1) {
    caf::message_builder builder;
    for (uint64_t i = 0; i < count; ++i) {
      auto info = next_type();
      if (info == nullptr)
        return;
      info->load_append(in, builder);
    }
    msg = builder.move_to_message();
  }
  if (in.remaining() != 0)
    throw wire_error(std::to_string(in.remaining())
                     + " trailing bytes after message");
  if (mid.is_response())
    route_->erase_pending(receiver, mid_value);
  auto dest = node_.find_exported(receiver);
  if (!dest) {
    auto reason = make_error(errc::no_such_actor,
                             "actor " + std::to_string(receiver)
                               + " does not exist on node '" + node_.name()
                               + "'");
    if (mid.is_request()) {
      send_error_response(sender, mid, reason);
    } else {
      ++node_.dropped_messages;
      log(log_level::info, "dropped message from " + display_name() + ": "
                             + describe(reason));
    }
    return;
  }
  auto* unit = node_.config().deliver_on_io_thread
                 ? io_unit::of(node_.system())
                 : nullptr;
  dest->enqueue(caf::make_mailbox_element(std::move(sender), mid,
                                          std::move(stages), std::move(msg)),
                unit);
  if (unit != nullptr)
    unit->run_pending();
}

void peer::handle_monitor(wire_reader& in) {
  uint64_t aid = 0;
  in(aid);
  auto target = node_.find_exported(aid);
  if (!target) {
    send_down(aid, node_.exit_reason_of(aid));
    return;
  }
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!monitored_.insert(aid).second)
      return;
  }
  auto reporter = new down_reporter(weak_from_this(), aid);
  reporter->set_tag(this);
  target->get()->attach(caf::attachable_ptr{reporter});
}

void peer::handle_down(wire_reader& in) {
  uint64_t aid = 0;
  caf::error reason;
  in(aid, reason);
  node_.proxies().erase(remote_id_, aid, std::move(reason));
}

void peer::handle_link(frame_kind kind, wire_reader& in) {
  auto remote = read_actor(in);
  uint64_t aid = 0;
  in(aid);
  auto local = node_.find_exported(aid);
  if (!remote || !local)
    return; // A dead party: the monitor of each side reports it.
  auto proxy = static_cast<caf::actor_proxy*>(remote->get());
  if (kind == frame_kind::link)
    proxy->add_link(local->get());
  else
    proxy->remove_link(local->get());
}

void peer::handle_lookup(wire_reader& in) {
  uint64_t request_id = 0;
  std::string name;
  in(request_id, name);
  auto buf = wire::begin_frame();
  wire_writer out{buf, this};
  out(request_id);
  if (auto found = node_.find_published(name)) {
    out(static_cast<uint8_t>(wire::lookup_status::found));
    write_actor(out, found->first.get());
    out(found->second);
  } else {
    out(static_cast<uint8_t>(wire::lookup_status::not_found));
  }
  wire::finish_frame(buf, frame_kind::lookup_reply);
  send_frame(std::move(buf));
}

void peer::handle_lookup_reply(wire_reader& in) {
  uint64_t request_id = 0;
  uint8_t status = 0;
  in(request_id, status);
  if (status == static_cast<uint8_t>(wire::lookup_status::not_found)) {
    node_.complete_lookup(request_id,
                          make_error(errc::name_not_found,
                                     "no actor is published under that name "
                                     "on "
                                       + display_name()));
    return;
  }
  if (status != static_cast<uint8_t>(wire::lookup_status::found))
    throw wire_error("invalid lookup status " + std::to_string(status));
  uint8_t tag = 0;
  uint64_t aid = 0;
  in(tag, aid);
  if (tag != static_cast<uint8_t>(wire::ref_tag::sender_node))
    throw wire_error("lookup reply names an actor of another node");
  lookup_result result;
  result.aid = aid;
  in(result.interface);
  node_.complete_lookup(request_id, std::move(result));
}

// -- closing --------------------------------------------------------------------

void peer::on_closed(connection&, const caf::error& reason) {
  auto was = state_.exchange(state::closed);
  // Count before logging, so that whoever sees the line sees the count.
  if (is(reason, errc::protocol_error) || is(reason, errc::frame_too_large))
    ++node_.protocol_errors;
  if (was == state::handshaking)
    ++node_.rejected_peers;
  if (is_quiet_close(reason) || duplicate_)
    log(log_level::info, "connection to " + display_name() + " closed: "
                           + describe(reason));
  else
    log(log_level::warning, "closed connection to " + display_name() + ": "
                              + describe(reason));
  finish_handshake(reason, nullptr);
  // Stop reporting downs for local actors to this peer.
  std::unordered_set<caf::actor_id> monitored;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    monitored.swap(monitored_);
  }
  for (auto aid : monitored)
    if (auto target = node_.find_exported(aid))
      target->get()->detach(
        caf::attachable::token{caf::attachable::token::anonymous, this});
  node_.on_peer_closed(*this, reason);
}

} // namespace relay
