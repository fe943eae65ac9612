#include "remote_proxy.hpp"

#include <caf/default_attachable.hpp>
#include <caf/system_messages.hpp>

#include "node_impl.hpp"
#include "peer.hpp"
#include "relay/log.hpp"
#include "relay/error.hpp"

namespace relay {

remote_proxy::remote_proxy(caf::actor_config& cfg, std::shared_ptr<route> route,
                           node_impl* node)
  : caf::actor_proxy(cfg), route_(std::move(route)), node_(node) {
  // nop
}

remote_proxy::~remote_proxy() = default;

namespace {

// Set by wire_link_scope while this thread runs a proxy's add_link.
thread_local bool in_wire_link = false;

} // namespace

remote_proxy::wire_link_scope::wire_link_scope() {
  in_wire_link = true;
}

remote_proxy::wire_link_scope::~wire_link_scope() {
  in_wire_link = false;
}

bool remote_proxy::is_link_exit(const caf::mailbox_element& what) {
  const auto& content = what.content();
  if (content.size() != 1 || !content.match_element<caf::exit_msg>(0))
    return false;
  const auto& em = content.get_as<caf::exit_msg>(0);
  if (!em.source)
    return false;
  // An explicit send_exit comes from an actor that is still running (or
  // from the anonymous sender, as this proxy's own address).
  auto source = caf::actor_cast<caf::strong_actor_ptr>(em.source);
  if (source && !source->get()->getf(caf::abstract_actor::is_terminated_flag))
    return false;
  // Drop our half of the link, if it is still there. Not during a link the
  // wire asked for: CAF holds our lock then, and made no link.
  if (!in_wire_link) {
    caf::default_attachable::observe_token tk{em.source,
                                              caf::default_attachable::link};
    detach(caf::attachable::token{caf::attachable::token::observer, &tk});
  }
  return true;
}

void remote_proxy::enqueue(caf::mailbox_element_ptr what,
                           caf::execution_unit* ctx) {
  if (!what)
    return;
  if (is_link_exit(*what))
    return;
  auto target = route_ ? route_->current() : nullptr;
  if (!target) {
    auto reason = make_error(errc::node_unreachable,
                             "no connection to node " + caf::to_string(node()));
    if (what->mid.is_request() && what->sender) {
      peer::bounce(*what, reason, ctx);
    } else {
      ++node_->dropped_messages;
      node_->drop_log().log(log_level::warning, "drop:no-route",
                            "dropped message to actor " + std::to_string(id())
                              + ": " + describe(reason));
    }
    return;
  }
  target->send_message(id(), *what, ctx);
}

bool remote_proxy::add_backlink(caf::abstract_actor* x) {
  if (x->node() != node_->system().node()) {
    // A link between actors of two other nodes: the wire protocol links a
    // remote actor with one of the receiver's only.
    log(log_level::warning, "cannot link actor " + std::to_string(id())
                              + " of node " + caf::to_string(node())
                              + " with actor " + std::to_string(x->id())
                              + " of another remote node");
    return false;
  }
  if (!caf::monitorable_actor::add_backlink(x))
    return false;
  if (auto target = route_ ? route_->current() : nullptr)
    target->send_link(frame_kind::link, x->ctrl(), id());
  return true;
}

bool remote_proxy::remove_backlink(caf::abstract_actor* x) {
  if (!caf::monitorable_actor::remove_backlink(x))
    return false;
  if (auto target = route_ ? route_->current() : nullptr)
    target->send_link(frame_kind::unlink, x->ctrl(), id());
  return true;
}

void remote_proxy::kill_proxy(caf::execution_unit* ctx, caf::error reason) {
  cleanup(std::move(reason), ctx);
}

} // namespace relay
