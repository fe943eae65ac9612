#pragma once

#include <memory>

#include <caf/actor_proxy.hpp>
#include <caf/mailbox_element.hpp>

namespace relay {

class route;
class node_impl;

/// Stands in for an actor on another node. Messages enqueued to it are
/// serialized on the sender's thread and handed to the peer's connection as
/// a ready frame: no broker actor, no thread hop.
///
/// Lifetime: owned by the node's caf::proxy_registry; killed (kill_proxy)
/// when the remote actor ends (with its exit reason) or the connection to
/// its node is lost (exit_reason::remote_link_unreachable).
class remote_proxy final : public caf::actor_proxy {
public:
  /// `route` is null for actors of nodes this node has no connection to;
  /// such proxies are killed right after creation.
  remote_proxy(caf::actor_config& cfg, std::shared_ptr<route> route,
               node_impl* node);

  ~remote_proxy() override;

  /// Thread-safe; called by any sender.
  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* ctx) override;

  /// A local actor links to us: remember it and tell the remote node.
  bool add_backlink(caf::abstract_actor* x) override;

  /// A local actor unlinks from us: forget it and tell the remote node.
  bool remove_backlink(caf::abstract_actor* x) override;

  void kill_proxy(caf::execution_unit* ctx, caf::error reason) override;

  const char* name() const override {
    return "relay.remote_proxy";
  }

  /// Marks, on this thread, a link that the wire asks for (the monitor
  /// protocol's proxy->add_link). If the local party has ended already,
  /// CAF tells this proxy so with an exit message while it holds this
  /// proxy's lock, and makes no link: there is nothing to detach then, and
  /// detaching would lock the proxy again (a deadlock).
  class wire_link_scope {
  public:
    wire_link_scope();
    ~wire_link_scope();
    wire_link_scope(const wire_link_scope&) = delete;
    wire_link_scope& operator=(const wire_link_scope&) = delete;
  };

private:
  /// True if `what` is an exit message from a local actor that has
  /// terminated: CAF's link machinery sends those (a linked actor ending, or
  /// a link to an actor that ended already). Links across nodes are settled
  /// on each side instead: the remote node learns of the exit through its
  /// monitor and its own proxy delivers EXIT to the actors still linked
  /// there, so forwarding would deliver the EXIT twice, or after an unlink.
  bool is_link_exit(const caf::mailbox_element& what);

  std::shared_ptr<route> route_;
  node_impl* node_; // outlives its proxies (node.hpp's contract)
};

} // namespace relay
