// Monitors, DOWN notices and links across nodes (frame kinds monitor, down,
// link, unlink). The receiver of a reference to a remote actor monitors it;
// the owner reports its end with a down frame, which kills the proxy with
// the real exit reason. Links are settled on each side through the proxies
// (see remote_proxy.hpp).

#include <caf/actor_proxy.hpp>
#include <caf/attachable.hpp>

#include "node_impl.hpp"
#include "peer.hpp"
#include "remote_proxy.hpp"
#include "protocols.hpp"
#include "wire.hpp"

namespace relay {

namespace {

/// Tells the remote node when a local actor it monitors ends, through
/// whichever connection serves the node then. Identified by the route, so
/// the node can detach it when the route is lost.
class down_reporter : public caf::attachable {
public:
  down_reporter(std::weak_ptr<route> target, caf::actor_id aid)
    : target_(std::move(target)), aid_(aid), tag_(target_.lock().get()) {
    // nop
  }

  void actor_exited(const caf::error& reason, caf::execution_unit*) override {
    if (auto r = target_.lock())
      if (auto p = r->current())
        p->send_down(aid_, reason);
  }

  bool matches(const token& what) override {
    return what.subtype == token::anonymous && what.ptr == tag_;
  }

private:
  std::weak_ptr<route> target_;
  caf::actor_id aid_;
  const void* tag_;
};

void handle_monitor(peer& p, wire_reader& in) {
  uint64_t aid = 0;
  in(aid);
  if (auto target = p.node().find_exported(aid))
    p.report_down_of(target);
  else
    p.send_down(aid, p.node().exit_reason_of(aid));
}

void handle_down(peer& p, wire_reader& in) {
  uint64_t aid = 0;
  caf::error reason;
  in(aid, reason);
  p.node().proxies().erase(p.remote_id(), aid, std::move(reason));
}

void handle_link(peer& p, wire_reader& in, bool link) {
  // Checked before any cast or lock: the first party must be an actor of
  // the sending node (a proxy here), the second one of ours.
  auto remote = p.read_remote_actor(in);
  uint64_t aid = 0;
  in(aid);
  auto local = p.node().find_exported(aid);
  if (!remote || !local)
    return; // A dead party: the monitor of each side reports it.
  auto proxy = static_cast<caf::actor_proxy*>(remote->get());
  if (link) {
    remote_proxy::wire_link_scope scope; // (see there)
    proxy->add_link(local->get());
  } else
    proxy->remove_link(local->get());
}

} // namespace

void peer::report_down_of(const caf::strong_actor_ptr& target) {
  if (!route_->add_monitored(target->id()))
    return;
  target->get()->attach(caf::attachable_ptr{
    new down_reporter(std::weak_ptr<route>{route_}, target->id())});
}

void stop_reporting_downs(node_impl& node, route& r) {
  for (auto aid : r.take_monitored())
    if (auto target = node.find_exported(aid))
      target->get()->detach(
        caf::attachable::token{caf::attachable::token::anonymous, &r});
}

void peer::send_monitor(caf::actor_id aid) {
  auto buf = begin_frame(8);
  wire_writer out{buf};
  out(static_cast<uint64_t>(aid));
  finish_frame(buf, frame_kind::monitor);
  send_frame(std::move(buf), true);
}

void peer::send_down(caf::actor_id aid, const caf::error& reason) {
  auto buf = begin_frame(32);
  wire_writer out{buf, this};
  out(static_cast<uint64_t>(aid), reason);
  finish_frame(buf, frame_kind::down);
  send_frame(std::move(buf), true);
}

void peer::send_link(frame_kind kind, caf::actor_control_block* local,
                     caf::actor_id remote) {
  // Runs inside the critical sections of both actors (add_backlink); the
  // frame goes out now, so it precedes anything `local` sends or reports
  // afterwards (a DOWN frame included).
  auto buf = begin_frame(32);
  wire_writer out{buf, this};
  write_actor(out, local);
  out(static_cast<uint64_t>(remote));
  finish_frame(buf, kind);
  send_frame(std::move(buf), true);
}

caf::error add_monitor_protocol(frame_table& table) {
  auto as_peer = [](auto f) {
    return [f](peer_context& p, wire_reader& in) {
      f(static_cast<peer&>(p), in);
    };
  };
  if (auto err = table.add(static_cast<uint8_t>(frame_kind::monitor),
                           "monitor", as_peer(handle_monitor)))
    return err;
  if (auto err = table.add(static_cast<uint8_t>(frame_kind::down), "down",
                           as_peer(handle_down)))
    return err;
  if (auto err = table.add(static_cast<uint8_t>(frame_kind::link), "link",
                           as_peer([](peer& p, wire_reader& in) {
                             handle_link(p, in, true);
                           })))
    return err;
  return table.add(static_cast<uint8_t>(frame_kind::unlink), "unlink",
                   as_peer([](peer& p, wire_reader& in) {
                     handle_link(p, in, false);
                   }));
}

} // namespace relay
