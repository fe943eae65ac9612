// Actor messages on the wire (frame kind `message`): serialized on the
// sender's thread by the proxy, decoded on the I/O thread and enqueued to
// the local receiver. See docs/wire-protocol.md for the body.

#include <cxxabi.h>

#include <cstdio>

#include <caf/actor_system.hpp>
#include <caf/message_builder.hpp>
#include <caf/type_nr.hpp>

#include "inbound_budget.hpp"
#include "io_unit.hpp"
#include "node_impl.hpp"
#include "peer.hpp"
#include "protocols.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
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

/// Records a message in the node's trace (relayctl monitor).
template <class Content>
void trace(node_impl& node, peer& p, bool inbound, caf::actor_id sender,
           caf::actor_id receiver, const Content& content, size_t bytes) {
  trace_record x;
  x.inbound = inbound;
  x.peer = p.display_name();
  x.sender = sender;
  x.receiver = receiver;
  for (size_t i = 0; i < content.size(); ++i) {
    if (i > 0)
      x.type += ", ";
    auto info = node.messages().find(content.type(i));
    x.type += info != nullptr ? info->name : type_label(content.type(i));
  }
  x.bytes = bytes;
  node.trace().record(std::move(x));
}

/// Thrown while decoding a message body whose framing is fine but whose
/// values are not: fails that one message, not the connection.
struct bad_body : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Encodes `content` as the body of a message frame after the fixed fields.
/// Returns an error for an unregistered type.
template <class Content>
caf::error encode_content(peer& p, wire_writer& out, const Content& content) {
  auto n = content.size();
  out(cereal::make_size_tag(static_cast<uint64_t>(n)));
  for (size_t i = 0; i < n; ++i) {
    auto type = content.type(i);
    auto info = p.node().messages().find(type);
    if (info == nullptr)
      return make_error(errc::unregistered_type,
                        "cannot send a " + type_label(type) + " to "
                          + p.display_name()
                          + ": type is not registered "
                            "(node_config::add_message_type)");
    out(info->id);
    info->save(out, content.get(i));
  }
  return caf::none;
}

/// Builds a complete message frame; errors for unregistered types or values
/// that fail to serialize.
template <class Content>
caf::expected<frame_buffer>
encode_message(peer& p, caf::actor_id receiver, const caf::mailbox_element& what,
               const Content& content) {
  auto buf = begin_frame(128);
  try {
    wire_writer out{buf, &p};
    out(static_cast<uint64_t>(receiver));
    p.write_actor(out, what.sender.get());
    out(static_cast<uint64_t>(what.mid.integer_value()));
    out(cereal::make_size_tag(static_cast<uint64_t>(what.stages.size())));
    for (auto& stage : what.stages)
      p.write_actor(out, stage.get());
    if (auto err = encode_content(p, out, content))
      return err;
  } catch (std::exception& ex) {
    return make_error(errc::invalid_argument,
                      std::string{"cannot serialize message: "} + ex.what());
  }
  finish_frame(buf, frame_kind::message);
  return buf;
}

void count_drop(peer& p, const std::string& what) {
  ++p.node().dropped_messages;
  p.node().drop_log().log(log_level::warning, "drop:" + p.display_name(),
                          "dropped message " + what);
}

/// A message for local actor `receiver` that cannot be delivered: a request
/// is answered with `reason` (to its remote sender), a response becomes
/// `reason` for the local requester, anything else is a counted drop.
void fail_incoming(peer& p, uint64_t receiver,
                   const caf::strong_actor_ptr& sender, caf::message_id mid,
                   const caf::error& reason) {
  if (mid.is_request() && sender) {
    sender->enqueue(nullptr, mid.response_id(), caf::make_message(reason),
                    nullptr);
    return;
  }
  if (mid.is_response())
    if (auto dest = p.node().find_exported(receiver)) {
      dest->enqueue(nullptr, mid, caf::make_message(reason), nullptr);
      return;
    }
  count_drop(p, "from " + p.display_name() + ": " + describe(reason));
}

/// Something an untrusted peer may not send (see trust_level): counted and
/// logged once; a request is answered with `reason`.
void refuse_untrusted(peer& p, uint64_t receiver,
                      const caf::strong_actor_ptr& sender, caf::message_id mid,
                      const std::string& what, const caf::error& reason) {
  p.refuse_untrusted(what);
  if (mid.is_request() || mid.is_response())
    fail_incoming(p, receiver, sender, mid, reason);
  else
    ++p.node().dropped_messages;
}

void handle_message(peer& p, wire_reader& in) {
  auto& node = p.node();
  auto wire_bytes = in.remaining();
  uint64_t receiver = 0;
  in(receiver);
  auto sender = p.read_actor(in);
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
    stages.emplace_back(p.read_actor(in));
  if (mid.is_response())
    p.current_route().erase_pending(receiver, mid_value);
  // From here on, a problem is this message's, not the connection's.
  caf::message msg;
  try {
    uint64_t count = 0;
    in(cereal::make_size_tag(count));
    auto next_type = [&]() -> const message_type_info* {
      uint64_t type_id = 0;
      in(type_id);
      auto info = node.messages().find(type_id);
      if (info != nullptr && info->system && !p.trusted()) {
        refuse_untrusted(p, receiver, sender, mid,
                         "a message carrying " + info->name,
                         make_error(errc::forbidden,
                                    "node '" + node.name()
                                      + "' does not accept " + info->name
                                      + " from untrusted peer "
                                      + p.display_name()));
        return nullptr;
      }
      if (info == nullptr) {
        ++node.unknown_type_ids;
        char hex[32];
        snprintf(hex, sizeof(hex), "0x%016llx",
                 static_cast<unsigned long long>(type_id));
        fail_incoming(p, receiver, sender, mid,
                      make_error(errc::unknown_type_id,
                                 std::string{"message type id "} + hex
                                   + " from " + p.display_name()
                                   + " is not registered on node '"
                                   + node.name() + "'"));
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
      throw bad_body(std::to_string(in.remaining())
                     + " trailing bytes after the message");
  } catch (std::exception& ex) {
    fail_incoming(p, receiver, sender, mid,
                  make_error(errc::protocol_error,
                             "node '" + node.name()
                               + "' cannot decode a message from "
                               + p.display_name() + ": " + ex.what()));
    return;
  }
  std::shared_ptr<actor_traffic> traffic; // set for published receivers
  auto dest = node.find_exported(receiver, traffic);
  if (!dest) {
    auto reason = make_error(errc::no_such_actor,
                             "actor " + std::to_string(receiver)
                               + " does not exist on node '" + node.name()
                               + "'");
    fail_incoming(p, receiver, sender, mid, reason);
    return;
  }
  if (!p.trusted() && dest->id() == node.spawner()->id()) {
    refuse_untrusted(p, receiver, sender, mid, "a remote spawn",
                     make_error(errc::forbidden,
                                "node '" + node.name() + "' spawns nothing for "
                                  "untrusted peer " + p.display_name()));
    return;
  }
  if (!p.trusted() && dest->id() == node.introspector()->id()) {
    refuse_untrusted(p, receiver, sender, mid, "introspection",
                     make_error(errc::forbidden,
                                "node '" + node.name() + "' answers no "
                                  "introspection for untrusted peer "
                                  + p.display_name()));
    return;
  }
  if (mid.is_request() && !sender)
    // As in CAF, the answer to an anonymous request has nowhere to go.
    count_drop(p, "(the answer to an anonymous request from "
                    + p.display_name() + ")");
  if (node.trace().active())
    trace(node, p, true, sender ? sender->id() : 0, dest->id(), msg,
          wire_bytes + frame_header::size);
  // Within a read the receiver is woken (or run) once, at its end.
  auto* unit = io_unit::batching(node.system(),
                                 node.config().deliver_on_io_thread);
  p.count_message_in();
  // Counted until the receiver is done with it (back-pressure).
  dest->enqueue(make_counted_element(std::move(sender), mid, std::move(stages),
                                     std::move(msg), p.budget_ptr(),
                                     wire_bytes, std::move(traffic)),
                unit);
}

} // namespace

void peer::bounce(caf::mailbox_element& what, const caf::error& reason,
                  caf::execution_unit* ctx) {
  if (what.mid.is_request() && what.sender)
    what.sender->enqueue(nullptr, what.mid.response_id(),
                         caf::make_message(reason), ctx);
}

void peer::send_message(caf::actor_id receiver, caf::mailbox_element& what,
                        caf::execution_unit* ctx) {
  auto to = [&] {
    return "to actor " + std::to_string(receiver) + " on " + display_name();
  };
  auto fail = [&](const caf::error& reason) {
    // The session's bound while the connection is broken counts like the
    // queue's (relay.resume-buffer, session.hpp).
    bool overloaded = is(reason, errc::overloaded);
    if (what.mid.is_request() && what.sender) {
      if (overloaded)
        ++node_.overload_rejections;
      bounce(what, reason, ctx);
      return;
    }
    if (overloaded && !what.mid.is_response())
      ++node_.overload_drops;
    if (what.mid.is_response()) {
      // The requester waits for this answer: it gets the error instead.
      auto err_msg = caf::make_message(reason);
      if (auto buf = encode_message(*this, receiver, what, err_msg))
        if (!send_frame(std::move(*buf), true))
          return;
    }
    count_drop(*this, to() + ": " + describe(reason));
  };
  // A retired connection passes frames on even once closed (send_last).
  if (!accepts_frames()) {
    fail(make_error(errc::node_unreachable,
                    "connection to " + display_name() + " is closed"));
    return;
  }
  // Flow control: a full queue refuses requests and asynchronous messages
  // before any work is spent on them. Responses pass: they answer requests
  // this node accepted, which the peer's own bound limits.
  if (!what.mid.is_response()) {
    auto bound = node_.config().max_queued_bytes;
    auto queued = queued_bytes();
    if (queued >= bound) {
      auto reason = make_error(
        errc::overloaded, "the outbound queue to " + display_name() + " holds "
                            + std::to_string(queued) + " bytes, at its bound of "
                            + std::to_string(bound)
                            + " (relay.max-queued-bytes)");
      if (what.mid.is_request() && what.sender) {
        ++node_.overload_rejections;
        bounce(what, reason, ctx);
      } else {
        ++node_.overload_drops;
        count_drop(*this, to() + ": " + describe(reason));
      }
      return;
    }
  }
  auto buf = encode_message(*this, receiver, what, what.content());
  if (!buf) {
    fail(buf.error());
    return;
  }
  // Remember requests so that a lost connection fails them at once.
  bool track = what.mid.is_request() && what.sender
               && what.sender->node() == node_.system().node();
  auto response_id = what.mid.response_id().integer_value();
  if (track)
    route_->add_pending(what.sender->id(), response_id,
                        caf::actor_cast<caf::weak_actor_ptr>(what.sender));
  if (node_.trace().active())
    trace(node_, *this, false, what.sender ? what.sender->id() : 0, receiver,
          what.content(), buf->size());
  if (auto err = send_frame(std::move(*buf), what.mid.is_response())) {
    if (track)
      route_->erase_pending(what.sender->id(), response_id);
    fail(err);
    return;
  }
  messages_out_.fetch_add(1, std::memory_order_relaxed);
}

caf::error add_message_protocol(frame_table& table) {
  return table.add(static_cast<uint8_t>(frame_kind::message), "message",
                   [](peer_context& p, wire_reader& in) {
                     handle_message(static_cast<peer&>(p), in);
                   });
}

} // namespace relay
