#include <caf/send.hpp>

#include "cluster_state.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"

// The etcd backend's share of the cluster actor: the state comes from
// etcd's keys (through the session, etcd_session.hpp) and goes into the
// same membership as the embedded backend's gossip; this node's decisions
// are carried out as writes to etcd and take effect when the watch brings
// them back, in etcd's order, to every member alike.

namespace relay::cluster_detail {

namespace {

using reannounce_atom = caf::atom_constant<caf::atom("creannc")>;

} // namespace

void etcd_join(cluster_state& st) {
  // etcd is the seed: the lease first, then the cluster's keys, then our
  // own key (etcd_opened, etcd_update, etcd_announced).
  st.joining = true;
  st.join_started = clock::now();
  st.next_join_attempt = st.join_started + st.cfg.retry_interval;
  st.etcd->open(caf::actor{st.self});
}

void etcd_leave(cluster_state& st, caf::response_promise rp) {
  // "left" for everyone, then the lease goes (and with it our key): the
  // deletion that comes back through the watch removes us.
  st.etcd->announce(member_status::left);
  st.etcd->revoke();
  st.leave_deadline = clock::now() + leave_timeout;
  st.leave_waiters.push_back(std::move(rp));
}

void etcd_tick(cluster_state& st, clock::time_point t) {
  if (st.joining && !st.etcd_open && t >= st.next_join_attempt) {
    st.next_join_attempt = t + st.cfg.retry_interval;
    st.etcd->open(caf::actor{st.self}); // (the session runs one at a time)
  }
  if (st.next_verify && t >= *st.next_verify && st.verifying.empty()) {
    st.next_verify.reset();
    etcd_verify_next(st);
  }
  if (st.quarantined || st.members.self_status() == member_status::joining)
    return;
  // etcd holds the state; the leader's decisions are carried out there
  // (the deletion comes back through the watch).
  st.spread();
  auto plan = st.members.plan_downing(t, st.cfg.down_after);
  if (plan.down_self) {
    log(log_level::warning, "cluster: this node reaches a minority of the "
                            "members past down-after; it removes itself");
    st.publish(st.members.remove_self(t));
    return;
  }
  for (auto& id : plan.down)
    if (st.downing.insert(id).second) {
      log(log_level::warning, "cluster: downing " + st.who(id)
                                + " (unreachable past down-after)");
      st.etcd->down_member(id);
    }
}

namespace {

// After every member refused our credentials: the next round of asking.
constexpr auto verify_retry = std::chrono::seconds{5};

void announce_up(cluster_state& st) {
  st.announced = true;
  st.next_verify.reset();
  if (st.join_failure) {
    log(log_level::info, "cluster: a member accepted this node's "
                         "credentials now; joining");
    st.join_failure = caf::none;
  }
  st.etcd->announce(member_status::up);
}

} // namespace

void etcd_verify_next(cluster_state& st) {
  if (st.announced || st.quarantined || !st.joining)
    return;
  const auto& own = st.me().address;
  for (auto& m : st.members.members())
    if (m.node != st.members.self() && m.status == member_status::up
        && m.address != own && st.verify_tried.insert(m.address).second) {
      st.verifying = m.address;
      st.dial(m.address);
      return;
    }
  st.verify_tried.clear();
  if (!st.verify_refusal) {
    // Nobody to ask, or nobody answered (dead members whose lease has not
    // expired yet): nothing speaks against joining.
    announce_up(st);
    return;
  }
  // Every member that answered refused us: this node is the odd one out
  // (another secret). Not final: the members may change.
  st.join_failure = std::move(st.verify_refusal);
  st.verify_refusal = caf::none;
  log(log_level::error, "cluster: " + describe(st.join_failure)
                          + "; asking again in 5 s");
  st.answer_waiters(st.join_failure);
  st.next_verify = clock::now() + verify_retry;
}

void etcd_verified(cluster_state& st, const dial_done& msg) {
  // A member we dialed before writing our key. One that accepts our
  // credentials is enough: one that refuses may be the stranger (a node
  // with another secret that started first), and is downed by the others
  // as unreachable.
  st.verifying.clear();
  if (!msg.error) {
    st.verify_tried.clear();
    st.verify_refusal = caf::none;
    announce_up(st);
    return;
  }
  if (is(msg.error, errc::authentication_failed)
      || is(msg.error, errc::version_mismatch))
    st.verify_refusal = make_error(errc::peer_rejected,
                                   "member " + msg.address
                                     + " refused this node: "
                                     + describe(msg.error));
  etcd_verify_next(st);
}

caf::message_handler etcd_handlers(state_ptr st) {
  return {
    // The embedded backend's frames: a node that tries to join through
    // seeds learns why it cannot; gossip is not how members talk here.
    [st](frame_join& msg) {
      join_reply reply;
      reply.final = true;
      reply.reason = st->me().address + " belongs to cluster '"
                     + st->cfg.cluster + "', which uses the etcd backend "
                     "(relay.cluster.backend = \"etcd\"): its members join "
                     "through etcd, not through seeds";
      log(log_level::warning, "cluster: refused " + msg.request.joiner.address
                                + ": " + reply.reason);
      st->send(msg.from, make_frame(cluster_frame::join_reply, reply));
    },
    [](frame_join_reply&) {
      // nop: this node asks no seeds
    },
    [](frame_gossip&) {
      // nop
    },
    [st](etcd_opened& msg) {
      if (msg.error) {
        st->join_problem = "cannot get an etcd lease (retrying): "
                           + describe(msg.error);
        log(log_level::warning, "cluster: " + st->join_problem);
        return; // the tick opens again
      }
      st->join_problem.clear();
      st->etcd_open = true;
    },
    [st](etcd_update& msg) {
      if (st->quarantined)
        return;
      auto t = clock::now();
      // In etcd's order: one batch may hold a put and the deletion of one
      // key, and every member must report them alike.
      for (auto& change : msg.changes) {
        if (st->quarantined)
          return;
        switch (change.kind) {
          case etcd_change::type::member: {
            // An earlier incarnation at our address: its key goes when we
            // announce; reporting it up first would only confuse.
            if (!st->announced && change.member.address == st->me().address
                && change.member.node != st->members.self())
              break;
            gossip_state g;
            g.cluster = st->cfg.cluster;
            g.members.push_back(std::move(change.member));
            st->publish(st->members.merge(g, t));
            break;
          }
          case etcd_change::type::row: {
            gossip_state g;
            g.cluster = st->cfg.cluster;
            g.rows.push_back(std::move(change.row));
            st->publish(st->members.merge(g, t));
            break;
          }
          case etcd_change::type::member_gone:
            st->publish(st->members.expel(change.node, t));
            break;
        }
      }
      if (msg.full && !st->quarantined) {
        // A fresh read: whoever has no key in it is gone (our own key only
        // once we wrote it).
        std::unordered_set<caf::node_id> present(msg.present.begin(),
                                                 msg.present.end());
        std::vector<caf::node_id> absent;
        for (auto& m : st->members.members())
          if (present.count(m.node) == 0
              && (m.node != st->members.self()
                  || st->members.self_status() != member_status::joining))
            absent.push_back(m.node);
        for (auto& id : absent)
          if (!st->quarantined)
            st->publish(st->members.expel(id, t));
      }
      if (st->quarantined || !st->joining || st->etcd_synced)
        return;
      st->etcd_synced = true;
      // Before writing our key, one member must accept our credentials: a
      // node with the wrong secret learns it here, not by being
      // unreachable for everyone.
      etcd_verify_next(*st);
    },
    [st](etcd_announced& msg) {
      if (!msg.error || st->quarantined)
        return;
      st->join_problem = "cannot write this node's key to etcd (retrying): "
                         + describe(msg.error);
      log(log_level::warning, "cluster: " + st->join_problem);
      st->self->delayed_send(st->self, st->cfg.retry_interval, reannounce_atom::value);
    },
    [st](reannounce_atom) {
      if (st->quarantined || !st->etcd_open)
        return;
      st->etcd->announce(st->members.self_status() == member_status::left
                           ? member_status::left
                           : member_status::up);
    },
    [st](etcd_row_written& msg) {
      st->row_in_flight = false;
      if (!msg.error)
        st->row_written = msg.version;
      // (otherwise the next tick writes it again)
    },
    [st](etcd_downed& msg) {
      if (msg.error)
        st->downing.erase(msg.node); // the next tick tries again
    },
    [st](etcd_lost& msg) {
      log(log_level::error, "cluster: " + describe(msg.reason)
                              + "; this node is no longer a member");
      st->etcd_open = false;
      if (!st->quarantined)
        st->publish(st->members.remove_self(clock::now()));
    },
  };
}

} // namespace relay::cluster_detail
