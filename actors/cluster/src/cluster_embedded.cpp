#include <algorithm>

#include <caf/send.hpp>

#include "cluster_state.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"

// The embedded backend's share of the cluster actor: joining through
// seeds, gossip of the whole state, and the leader's duties. See
// membership.hpp for the state and its rules.

namespace relay::cluster_detail {

namespace {

void form(cluster_state& st) {
  log(log_level::info, "cluster: forming cluster '" + st.cfg.cluster
                         + "' at " + st.me().address);
  st.publish(st.members.form(clock::now()));
}

// One round of the join: ask every seed we are connected to, dial the
// others.
void try_join(cluster_state& st) {
  auto t = clock::now();
  if (st.first_seed && t - st.join_started >= st.cfg.seed_timeout) {
    st.first_seed = false;
    form(st);
    return;
  }
  if (st.seeds.empty()) {
    form(st);
    return;
  }
  st.next_join_attempt = t + st.cfg.retry_interval;
  join_request req{st.cfg.cluster, st.me()};
  auto frame = make_frame(cluster_frame::join, req);
  for (auto& seed : st.seeds) {
    bool asked = false;
    for (auto& [id, addr] : st.seed_of)
      if (addr == seed && st.connected.count(id) > 0) {
        st.send(id, frame);
        asked = true;
      }
    if (!asked)
      st.dial(seed);
  }
}

// The name of a live, connected member (not `x`) at x's address, if any:
// a restarted node cannot be connected any more under its old id.
std::string address_in_use(const cluster_state& st, const member_info& x) {
  for (auto& m : st.members.members())
    if (m.node != x.node && m.address == x.address
        && st.connected.count(m.node) > 0 && m.reachable)
      return m.name;
  return {};
}

void send_gossip(cluster_state& st, const caf::node_id& to) {
  st.send(to, make_frame(cluster_frame::gossip, st.members.snapshot()));
}

} // namespace

void embedded_join(cluster_state& st, std::vector<std::string> seeds) {
  const auto& own = st.me().address;
  st.first_seed = !seeds.empty() && seeds.front() == own;
  seeds.erase(std::remove(seeds.begin(), seeds.end(), own), seeds.end());
  st.seeds = std::move(seeds);
  st.joining = true;
  st.join_started = clock::now();
  try_join(st);
}

void embedded_leave(cluster_state& st, caf::response_promise rp) {
  // Akka's way: stay connected until the leader has removed us (every
  // member then heard "left" before our connections close, so nobody
  // reads the close as a failure), bounded by leave_timeout.
  auto leader = st.members.leader();
  if (!leader || st.connected.count(leader) == 0) {
    st.publish(st.members.remove_self(clock::now())); // nobody to wait for
    rp.deliver(caf::unit);
    return;
  }
  st.gossip_to_all();
  st.leave_deadline = clock::now() + leave_timeout;
  st.leave_waiters.push_back(std::move(rp));
}

void embedded_tick(cluster_state& st, clock::time_point t) {
  if (st.joining && t >= st.next_join_attempt)
    try_join(st);
  if (st.quarantined || st.members.self_status() == member_status::joining)
    return;
  auto changes = st.members.tick(t, st.cfg.down_after);
  if (!changes.empty()) {
    st.publish(std::move(changes));
    if (!st.quarantined)
      st.gossip_to_all();
  }
  if (t >= st.next_gossip) {
    // Anti-entropy: one random member.
    st.next_gossip = t + st.cfg.gossip_interval;
    std::vector<caf::node_id> peers;
    for (auto& id : st.connected)
      if (st.is_member(id))
        peers.push_back(id);
    if (!peers.empty())
      send_gossip(st, peers[st.rng() % peers.size()]);
  }
}

caf::message_handler embedded_handlers(state_ptr st) {
  return {
    [st](frame_join& msg) {
      auto& req = msg.request;
      join_reply reply;
      if (req.joiner.node != msg.from) {
        st->n->disconnect(msg.from,
                          make_error(errc::protocol_error,
                                     "join request for another node"));
        return;
      }
      if (req.cluster != st->cfg.cluster) {
        reply.final = true;
        reply.reason = "node '" + req.joiner.name + "' asked to join cluster '"
                       + req.cluster + "', but " + st->me().address
                       + " belongs to cluster '" + st->cfg.cluster + "'";
      } else if (st->quarantined
                 || st->members.self_status() != member_status::up) {
        reply.reason = st->me().address + " is not an up member of '"
                       + st->cfg.cluster + "' (yet)";
      } else if (auto clash = address_in_use(*st, req.joiner); !clash.empty()) {
        reply.final = true;
        reply.reason = "address " + req.joiner.address + " is advertised by "
                       "live member '" + clash + "' too (check "
                       "relay.cluster.advertise)";
      } else if (auto events = st->members.admit(req.joiner, clock::now()); !events) {
        reply.final = true;
        reply.reason = "node '" + req.joiner.name + "' (this incarnation) was "
                       "removed from cluster '" + st->cfg.cluster
                       + "'; only a new process can join again";
      } else {
        reply.welcome = true;
        st->publish(std::move(*events));
        reply.state = st->members.snapshot();
      }
      if (!reply.welcome)
        log(log_level::warning, "cluster: refused " + req.joiner.address + ": "
                                  + reply.reason);
      st->send(msg.from, make_frame(cluster_frame::join_reply, reply));
      if (reply.welcome)
        st->gossip_to_all();
    },
    [st](frame_join_reply& msg) {
      if (!st->joining || st->seed_of.count(msg.from) == 0)
        return; // only the seeds we asked answer

      auto& reply = msg.reply;
      if (!reply.welcome) {
        log(log_level::info, "cluster: seed " + st->who(msg.from)
                               + " refused: " + reply.reason);
        if (reply.final) {
          st->joining = false;
          st->join_failure = make_error(errc::peer_rejected, reply.reason);
          st->answer_waiters(st->join_failure);
        }
        return;
      }
      if (reply.state.cluster != st->cfg.cluster)
        return;
      st->first_seed = false;
      st->publish(st->members.merge(reply.state, clock::now()));
    },
    [st](frame_gossip& msg) {
      auto& g = msg.state;
      if (g.cluster != st->cfg.cluster) {
        st->n->disconnect(msg.from,
                          make_error(errc::peer_rejected,
                                     "gossip of cluster '" + g.cluster
                                       + "' on a connection of cluster '"
                                       + st->cfg.cluster + "'"));
        return;
      }
      if (st->quarantined)
        return;
      bool lists_sender = false, lists_me = false;
      for (auto& m : g.members) {
        lists_sender |= m.node == msg.from;
        lists_me |= m.node == st->members.self();
      }
      if (!lists_sender) {
        st->n->disconnect(msg.from,
                          make_error(errc::protocol_error,
                                     "cluster gossip that omits its sender"));
        return;
      }
      auto joining = st->members.self_status() == member_status::joining;
      if (!st->is_member(msg.from) && !(joining && lists_me)) {
        // Hidden nodes, strangers and removed members do not write our
        // state. A removed member that left is told it is removed.
        if (st->members.is_removed(msg.from) && !msg.reply)
          st->send(msg.from, make_frame(cluster_frame::gossip_reply,
                                        st->members.snapshot()));
        return;
      }
      st->publish(st->members.merge(g, clock::now()));
      // Whoever changes the state tells every member (full mesh); a merge
      // is not passed on, which would cost n^2 frames per change. The
      // sender learns what it missed, unless this was itself an answer
      // (states that differ only in what each side forgot would otherwise
      // ping-pong forever); anti-entropy covers the rest.
      if (msg.reply)
        return;
      auto after = make_frame(cluster_frame::gossip_reply,
                              st->members.snapshot());
      auto theirs = make_frame(cluster_frame::gossip_reply, g);
      if (after != theirs)
        st->send(msg.from, std::move(after));
    },
  };
}

} // namespace relay::cluster_detail
