#include "cluster_actor.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"

namespace relay::cluster_detail {

namespace {

// Redials of a lost member back off from retry-interval to this multiple.
constexpr int max_backoff_factor = 8;

// How long the higher address waits for the lower one to dial it.
constexpr auto dial_grace = std::chrono::seconds{3};

using reannounce_atom = caf::atom_constant<caf::atom("creannc")>;

// How long a leaving node waits for the leader to remove it.
constexpr auto leave_timeout = std::chrono::seconds{2};

struct dial_state {
  clock::time_point next_attempt;
  clock::duration backoff{};
  bool in_flight = false;
};

struct state {
  node* n = nullptr;
  settings cfg;
  membership members;
  std::mt19937_64 rng{std::random_device{}()};

  // Joining.
  bool joining = false;
  std::vector<std::string> seeds;   // without our own address
  bool first_seed = false;          // may form a new cluster
  clock::time_point join_started;
  clock::time_point next_join_attempt;
  caf::error join_failure;          // a final refusal
  std::vector<caf::response_promise> up_waiters;
  std::unordered_map<caf::node_id, std::string> seed_of; // dialed seeds

  // Connections and detection.
  std::unordered_set<caf::node_id> connected;
  std::shared_ptr<detector_table> detectors;
  std::shared_ptr<helper_gate> gate;
  std::unordered_map<std::string, dial_state> dials; // by address
  // Members not connected, since when (for the dial grace period).
  std::unordered_map<caf::node_id, clock::time_point> unconnected_since;
  clock::time_point next_gossip;
  bool quarantined = false;
  // Leaving: answered once removed (or at the deadline).
  std::vector<caf::response_promise> leave_waiters;
  std::optional<clock::time_point> leave_deadline;

  std::vector<caf::actor> observers;

  // The etcd backend (null: embedded).
  std::shared_ptr<etcd_session> etcd;
  bool etcd_open = false;        // the lease is granted
  bool etcd_synced = false;      // the first full read arrived
  std::string verifying;         // a member dialed to check our credentials
  uint64_t row_written = 0;      // version of our row in etcd
  bool row_in_flight = false;    // a write of our row is under way
  std::unordered_set<caf::node_id> downing; // member keys we deleted

  state(node* n, settings cfg, member_info self)
    : n(n), cfg(std::move(cfg)), members(this->cfg.cluster, std::move(self)) {
    // nop
  }

  const member_info& me() const {
    return *members.find(members.self());
  }

  std::string who(const caf::node_id& id) const {
    if (auto m = members.find(id))
      return "'" + m->name + "' at " + m->address;
    return caf::to_string(id);
  }

  bool is_member(const caf::node_id& id) const {
    auto m = members.find(id);
    return m != nullptr && m->status < member_status::down;
  }

  void send(const caf::node_id& to, frame_buffer frame) {
    if (auto err = n->send_frame(to, std::move(frame)))
      log(log_level::debug, "cluster: cannot send to " + who(to) + ": "
                              + describe(err));
  }

  /// Makes a change of this node's state known: gossip to every member,
  /// or (etcd) this node's observation row written to etcd.
  void spread() {
    if (!etcd) {
      gossip_to_all();
      return;
    }
    // Rows count once their observer is a member, so ours is written
    // from up on (the tick catches up on what changed before).
    if (!etcd_open || row_in_flight
        || members.self_status() != member_status::up)
      return;
    auto row = members.own_row();
    if (row.version != row_written) {
      row_in_flight = true;
      etcd->put_row(row);
    }
  }

  void send_gossip(const caf::node_id& to) {
    send(to, make_frame(cluster_frame::gossip, members.snapshot()));
  }

  void gossip_to_all() {
    auto frame = make_frame(cluster_frame::gossip, members.snapshot());
    for (auto& id : connected)
      if (is_member(id) && id != members.self())
        send(id, frame);
  }

  /// Starts a failure detector (and so heartbeats) for a connected member.
  /// The connection counts as its first heartbeat: a member that never
  /// sends one is suspected like one that stopped (Akka's
  /// expected-response-after plays this part there).
  void track(const caf::node_id& id) {
    if (connected.count(id) > 0 && is_member(id) && id != members.self())
      detectors->track(id, clock::now());
  }

  void answer_waiters(const caf::error& err) {
    for (auto& rp : up_waiters)
      if (err)
        rp.deliver(err);
      else
        rp.deliver(caf::unit);
    up_waiters.clear();
  }
};

using state_ptr = std::shared_ptr<state>;

std::string describe_event(const member_event& ev) {
  return std::string{"cluster: member '"} + ev.member.name + "' at "
         + ev.member.address + " is " + to_string(ev.kind);
}

} // namespace

bool detector_table::track(const caf::node_id& id, clock::time_point now) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto [i, added] = map_.emplace(id, phi_accrual_detector{cfg_});
  if (added)
    i->second.heartbeat(now);
  return added;
}

void detector_table::forget(const caf::node_id& id) {
  std::lock_guard<std::mutex> guard{mtx_};
  map_.erase(id);
}

bool detector_table::contains(const caf::node_id& id) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return map_.count(id) > 0;
}

void detector_table::heartbeat(const caf::node_id& id, clock::time_point now) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = map_.find(id); i != map_.end())
    i->second.heartbeat(now);
}

std::vector<caf::node_id> detector_table::tracked() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<caf::node_id> result;
  result.reserve(map_.size());
  for (auto& kvp : map_)
    result.push_back(kvp.first);
  return result;
}

std::vector<detector_table::suspect>
detector_table::suspects(clock::time_point now) const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<suspect> result;
  for (auto& [id, det] : map_)
    if (det.started() && !det.available(now))
      result.push_back(suspect{id, det.phi(now), now - det.last_heartbeat()});
  return result;
}

caf::behavior cluster_actor(caf::event_based_actor* self, node* n,
                            settings cfg, member_info self_info,
                            std::shared_ptr<detector_table> detectors,
                            std::shared_ptr<helper_gate> gate,
                            std::shared_ptr<etcd_session> etcd) {
  auto st = std::make_shared<state>(n, std::move(cfg), std::move(self_info));
  st->detectors = std::move(detectors);
  st->gate = std::move(gate);
  st->etcd = std::move(etcd);
  auto now = [] { return clock::now(); };
  // Dials `address` on a thread of its own (node::connect blocks); the
  // result comes back as dial_done.
  auto dial = [self, st](const std::string& address) {
    auto& d = st->dials[address];
    if (d.in_flight)
      return;
    d.in_flight = true;
    auto me = caf::actor{self};
    auto n = st->n;
    auto gate = st->gate;
    if (!gate->enter()) {
      d.in_flight = false;
      return; // stopping
    }
    self->system().spawn<caf::detached + caf::hidden>(
      [n, me, address, gate](caf::event_based_actor* helper) {
        helper_gate::pass pass{*gate};
        auto result = n->connect(address);
        if (result)
          caf::anon_send(me, dial_done{address, *result, caf::none});
        else
          caf::anon_send(me, dial_done{address, caf::node_id{},
                                       std::move(result.error())});
        helper->quit();
      });
  };
  // Applies the consequences of membership events and tells observers.
  std::function<void(std::vector<member_event>)> publish;
  publish = [self, st](std::vector<member_event> events) {
    if (events.empty())
      return;
    auto self_id = st->members.self();
    bool self_gone = false;
    for (auto& ev : events) {
      log(ev.kind == member_event_kind::unreachable
              || ev.kind == member_event_kind::down
            ? log_level::warning
            : log_level::info,
          describe_event(ev));
      for (auto& obs : st->observers)
        self->send(obs, ev);
      auto& id = ev.member.node;
      if (id == self_id) {
        if (ev.kind == member_event_kind::up) {
          st->joining = false;
          st->answer_waiters(caf::none);
        } else if (ev.kind == member_event_kind::down
                   || ev.kind == member_event_kind::removed) {
          self_gone = true;
        }
        continue;
      }
      st->track(id);
      if (ev.kind == member_event_kind::joining
          || ev.kind == member_event_kind::up) {
        // Maybe a new incarnation at a known address: the back-off earned
        // by the old one must not delay dialing it.
        if (auto d = st->dials.find(ev.member.address); d != st->dials.end()) {
          d->second.backoff = {};
          d->second.next_attempt = {};
        }
      }
      if (ev.kind == member_event_kind::down) {
        // Declared failed: whatever connection is left goes too, so that
        // its proxies report DOWN here as on the nodes that lost it.
        st->n->disconnect(id, make_error(errc::connection_closed,
                                         "member " + st->who(id)
                                           + " was declared down"));
      }
      if (ev.kind == member_event_kind::removed) {
        st->detectors->forget(id);
        st->dials.erase(ev.member.address);
        // A member that left waits to hear of its removal before it closes
        // its connections; it is no member now, so tell it directly.
        if (st->connected.count(id) > 0)
          st->send(id, make_frame(cluster_frame::gossip_reply,
                                  st->members.snapshot()));
      }
    }
    if (self_gone && !st->quarantined) {
      st->quarantined = true;
      st->joining = false;
      if (st->etcd)
        st->etcd->revoke(); // our keys (names included) go at once
      st->answer_waiters(make_error(errc::connection_closed,
                                    "this node was removed from cluster '"
                                      + st->cfg.cluster + "'"));
      for (auto& rp : st->leave_waiters)
        rp.deliver(caf::unit);
      st->leave_waiters.clear();
      log(log_level::warning,
          "cluster: this node is no longer a member of '" + st->cfg.cluster
            + "'; a new process (a new incarnation) may join again");
      for (auto& id : st->connected)
        if (st->members.find(id) != nullptr)
          st->n->disconnect(id, make_error(errc::connection_closed,
                                           "this node left the cluster"));
    }
  };
  auto form = [st, publish, now] {
    log(log_level::info, "cluster: forming cluster '" + st->cfg.cluster
                           + "' at " + st->me().address);
    publish(st->members.form(now()));
  };
  // One round of the join: ask every seed we are connected to, dial the
  // others.
  auto try_join = [self, st, dial, form, now] {
    auto t = now();
    if (st->first_seed && t - st->join_started >= st->cfg.seed_timeout) {
      st->first_seed = false;
      form();
      return;
    }
    if (st->seeds.empty()) {
      form();
      return;
    }
    st->next_join_attempt = t + st->cfg.retry_interval;
    join_request req{st->cfg.cluster, st->me()};
    auto frame = make_frame(cluster_frame::join, req);
    for (auto& seed : st->seeds) {
      bool asked = false;
      for (auto& [id, addr] : st->seed_of)
        if (addr == seed && st->connected.count(id) > 0) {
          st->send(id, frame);
          asked = true;
        }
      if (!asked)
        dial(seed);
    }
  };
  // The name of a live, connected member (not `x`) at x's address, if any:
  // a restarted node cannot be connected any more under its old id.
  auto address_in_use = [st](const member_info& x) -> std::string {
    for (auto& m : st->members.members())
      if (m.node != x.node && m.address == x.address
          && st->connected.count(m.node) > 0 && m.reachable)
        return m.name;
    return {};
  };
  self->set_down_handler([st](caf::down_msg& dm) {
    auto& obs = st->observers;
    obs.erase(std::remove_if(obs.begin(), obs.end(),
                             [&](const caf::actor& x) {
                               return x.address() == dm.source;
                             }),
              obs.end());
  });
  self->send(self, tick_atom::value);
  return {
    // -- API ----------------------------------------------------------------
    [=](join_atom,
        std::vector<std::string> seeds) -> caf::result<caf::unit_t> {
      if (st->etcd && st->join_failure)
        return st->join_failure; // (a final refusal: another secret)
      if (st->etcd && !st->quarantined
          && (st->joining
              || st->members.self_status() != member_status::joining))
        return caf::unit; // etcd joins once, at start; asking again is fine
      if (st->joining || st->members.self_status() != member_status::joining
          || st->quarantined)
        return make_error(errc::invalid_argument,
                          "this node is already joining or joined");
      if (st->etcd) {
        // etcd is the seed: the lease first, then the cluster's keys, then
        // our own key (etcd_opened, etcd_update, etcd_announced).
        st->joining = true;
        st->join_started = now();
        st->next_join_attempt = now() + st->cfg.retry_interval;
        st->etcd->open(self);
        return caf::unit;
      }
      const auto& own = st->me().address;
      st->first_seed = !seeds.empty() && seeds.front() == own;
      seeds.erase(std::remove(seeds.begin(), seeds.end(), own), seeds.end());
      st->seeds = std::move(seeds);
      st->joining = true;
      st->join_started = now();
      try_join();
      return caf::unit;
    },
    [=](wait_up_atom) -> caf::result<caf::unit_t> {
      if (st->members.self_status() == member_status::up)
        return caf::unit;
      if (st->quarantined)
        return make_error(errc::connection_closed,
                          "this node is no longer a member");
      if (st->join_failure)
        return st->join_failure;
      auto rp = self->make_response_promise();
      st->up_waiters.push_back(rp);
      return rp;
    },
    [=](leave_atom) -> caf::result<caf::unit_t> {
      if (st->quarantined)
        return caf::unit;
      st->joining = false;
      if (st->members.self_status() == member_status::joining) {
        publish(st->members.remove_self(now())); // never admitted
        return caf::unit;
      }
      // Akka's way: stay connected until the leader has removed us (every
      // member then heard "left" before our connections close, so nobody
      // reads the close as a failure), bounded by leave_timeout.
      publish(st->members.leave(now()));
      if (st->etcd) {
        // "left" for everyone, then the lease goes (and with it our key):
        // the deletion that comes back through the watch removes us.
        st->etcd->announce(member_status::left);
        st->etcd->revoke();
        st->leave_deadline = now() + leave_timeout;
        auto rp = self->make_response_promise();
        st->leave_waiters.push_back(rp);
        return rp;
      }
      auto leader = st->members.leader();
      if (!leader || st->connected.count(leader) == 0) {
        publish(st->members.remove_self(now())); // nobody to wait for
        return caf::unit;
      }
      st->gossip_to_all();
      st->leave_deadline = now() + leave_timeout;
      auto rp = self->make_response_promise();
      st->leave_waiters.push_back(rp);
      return rp;
    },
    [=](members_atom) {
      return st->members.members();
    },
    [=](monitor_atom, caf::actor observer) {
      if (!observer)
        return;
      auto& obs = st->observers;
      if (std::find(obs.begin(), obs.end(), observer) != obs.end())
        return;
      self->monitor(observer);
      obs.push_back(observer);
      for (auto& m : st->members.members()) {
        member_event ev;
        ev.member = m;
        switch (m.status) {
          case member_status::joining:
            ev.kind = member_event_kind::joining;
            break;
          case member_status::up:
            ev.kind = member_event_kind::up;
            break;
          case member_status::left:
            ev.kind = member_event_kind::left;
            break;
          default:
            ev.kind = member_event_kind::down;
        }
        self->send(observer, ev);
        if (!m.reachable && m.status <= member_status::up) {
          ev.kind = member_event_kind::unreachable;
          self->send(observer, ev);
        }
      }
    },
    [=](demonitor_atom, caf::actor observer) {
      auto& obs = st->observers;
      obs.erase(std::remove(obs.begin(), obs.end(), observer), obs.end());
      self->demonitor(observer);
    },
    // -- frames -------------------------------------------------------------
    [=](frame_join& msg) {
      auto& req = msg.request;
      join_reply reply;
      if (st->etcd) {
        reply.final = true;
        reply.reason = st->me().address + " belongs to cluster '"
                       + st->cfg.cluster + "', which uses the etcd backend "
                       "(relay.cluster.backend = \"etcd\"): its members join "
                       "through etcd, not through seeds";
        log(log_level::warning, "cluster: refused " + req.joiner.address
                                  + ": " + reply.reason);
        st->send(msg.from, make_frame(cluster_frame::join_reply, reply));
        return;
      }
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
      } else if (auto clash = address_in_use(req.joiner); !clash.empty()) {
        reply.final = true;
        reply.reason = "address " + req.joiner.address + " is advertised by "
                       "live member '" + clash + "' too (check "
                       "relay.cluster.advertise)";
      } else if (auto events = st->members.admit(req.joiner, now()); !events) {
        reply.final = true;
        reply.reason = "node '" + req.joiner.name + "' (this incarnation) was "
                       "removed from cluster '" + st->cfg.cluster
                       + "'; only a new process can join again";
      } else {
        reply.welcome = true;
        publish(std::move(*events));
        reply.state = st->members.snapshot();
      }
      if (!reply.welcome)
        log(log_level::warning, "cluster: refused " + req.joiner.address + ": "
                                  + reply.reason);
      st->send(msg.from, make_frame(cluster_frame::join_reply, reply));
      if (reply.welcome)
        st->gossip_to_all();
    },
    [=](frame_join_reply& msg) {
      if (st->etcd || !st->joining || st->seed_of.count(msg.from) == 0)
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
      publish(st->members.merge(reply.state, now()));
    },
    [=](frame_gossip& msg) {
      auto& g = msg.state;
      if (g.cluster != st->cfg.cluster) {
        st->n->disconnect(msg.from,
                          make_error(errc::peer_rejected,
                                     "gossip of cluster '" + g.cluster
                                       + "' on a connection of cluster '"
                                       + st->cfg.cluster + "'"));
        return;
      }
      if (st->quarantined || st->etcd)
        return; // (etcd: members do not gossip)
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
      publish(st->members.merge(g, now()));
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
    // -- node events ----------------------------------------------------------
    [=](peer_up& msg) {
      auto& id = msg.node;
      st->connected.insert(id);
      if (st->members.is_removed(id)) {
        st->n->disconnect(id, make_error(errc::peer_rejected,
                                         "a removed member may not come back"));
        return;
      }
      if (!st->is_member(id) || st->quarantined)
        return;
      st->detectors->forget(id);
      st->track(id);
      if (auto m = st->members.find(id))
        st->dials.erase(m->address);
      publish(st->members.observe(id, true, now()));
      st->spread();
    },
    [=](peer_down& msg) {
      auto& id = msg.node;
      st->connected.erase(id);
      st->detectors->forget(id);
      if (!st->is_member(id) || st->quarantined)
        return;
      publish(st->members.observe(id, false, now()));
      st->spread();
    },
    [=](dial_done& msg) {
      auto& d = st->dials[msg.address];
      d.in_flight = false;
      if (!st->verifying.empty() && msg.address == st->verifying) {
        // etcd: a member we dialed before writing our key; if it refuses
        // our credentials, every member will.
        st->verifying.clear();
        if (msg.error && (is(msg.error, errc::authentication_failed)
                          || is(msg.error, errc::version_mismatch))) {
          st->joining = false;
          st->join_failure = make_error(
            errc::peer_rejected, "member " + msg.address
                                   + " refused this node: "
                                   + describe(msg.error));
          log(log_level::error, "cluster: " + describe(st->join_failure));
          st->answer_waiters(st->join_failure);
          st->etcd->revoke();
          return;
        }
        st->etcd->announce(member_status::up);
      }
      if (msg.error) {
        d.backoff = d.backoff.count() == 0
                      ? st->cfg.retry_interval
                      : std::min(d.backoff * 2, st->cfg.retry_interval
                                                  * max_backoff_factor);
        d.next_attempt = now() + d.backoff;
        log(log_level::debug, "cluster: cannot reach " + msg.address + ": "
                                + describe(msg.error));
        // A seed that refuses our credentials will not change its mind.
        bool seed = std::find(st->seeds.begin(), st->seeds.end(), msg.address)
                    != st->seeds.end();
        if (st->joining && seed
            && (is(msg.error, errc::authentication_failed)
                || is(msg.error, errc::version_mismatch))) {
          st->joining = false;
          st->join_failure = make_error(
            errc::peer_rejected, "seed " + msg.address
                                   + " refused this node: "
                                   + describe(msg.error));
          log(log_level::error, "cluster: " + describe(st->join_failure));
          st->answer_waiters(st->join_failure);
        }
        // A member we know but cannot connect to is unreachable from here
        // (until a connection succeeds).
        for (auto& m : st->members.members())
          if (m.address == msg.address && m.node != st->members.self()
              && st->connected.count(m.node) == 0) {
            auto events = st->members.observe(m.node, false, now());
            if (!events.empty()) {
              publish(std::move(events));
              st->spread();
            }
          }
        return;
      }
      d.backoff = {};
      if (st->joining
          && std::find(st->seeds.begin(), st->seeds.end(), msg.address)
               != st->seeds.end()) {
        st->seed_of[msg.node] = msg.address;
        join_request req{st->cfg.cluster, st->me()};
        st->send(msg.node, make_frame(cluster_frame::join, req));
      }
    },
    // -- the etcd backend -----------------------------------------------------
    [=](etcd_opened& msg) {
      if (msg.error) {
        log(log_level::warning, "cluster: cannot get an etcd lease "
                                "(retrying): "
                                  + describe(msg.error));
        return; // the tick opens again
      }
      st->etcd_open = true;
    },
    [=](etcd_update& msg) {
      if (st->quarantined)
        return;
      auto t = now();
      // In etcd's order: one batch may hold a put and the deletion of one
      // key, and every member must report them alike.
      for (auto& change : msg.changes) {
        if (st->quarantined)
          return;
        switch (change.kind) {
          case etcd_change::type::member: {
            gossip_state g;
            g.cluster = st->cfg.cluster;
            g.members.push_back(std::move(change.member));
            publish(st->members.merge(g, t));
            break;
          }
          case etcd_change::type::row: {
            gossip_state g;
            g.cluster = st->cfg.cluster;
            g.rows.push_back(std::move(change.row));
            publish(st->members.merge(g, t));
            break;
          }
          case etcd_change::type::member_gone:
            publish(st->members.expel(change.node, t));
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
            publish(st->members.expel(id, t));
      }
      if (st->quarantined || !st->joining || st->etcd_synced)
        return;
      st->etcd_synced = true;
      // Before writing our key, dial one member: a node with the wrong
      // secret learns it here, not by being unreachable for everyone.
      for (auto& m : st->members.members())
        if (m.node != st->members.self() && m.status == member_status::up
            && m.address != st->me().address) {
          st->verifying = m.address;
          dial(m.address);
          return;
        }
      st->etcd->announce(member_status::up);
    },
    [=](etcd_announced& msg) {
      if (!msg.error || st->quarantined)
        return;
      log(log_level::warning, "cluster: cannot write this node's key to "
                              "etcd (retrying): "
                                + describe(msg.error));
      self->delayed_send(self, st->cfg.retry_interval, reannounce_atom::value);
    },
    [=](reannounce_atom) {
      if (st->quarantined || !st->etcd_open)
        return;
      st->etcd->announce(st->members.self_status() == member_status::left
                           ? member_status::left
                           : member_status::up);
    },
    [=](etcd_row_written& msg) {
      st->row_in_flight = false;
      if (!msg.error)
        st->row_written = msg.version;
      // (otherwise the next tick writes it again)
    },
    [=](etcd_downed& msg) {
      if (msg.error)
        st->downing.erase(msg.node); // the next tick tries again
    },
    [=](etcd_lost& msg) {
      log(log_level::error, "cluster: " + describe(msg.reason)
                              + "; this node is no longer a member");
      st->etcd_open = false;
      if (!st->quarantined)
        publish(st->members.remove_self(now()));
    },
    // -- timer ----------------------------------------------------------------
    [=](tick_atom) {
      auto t = now();
      self->delayed_send(self, st->cfg.heartbeat_interval, tick_atom::value);
      if (st->quarantined)
        return;
      if (st->joining && t >= st->next_join_attempt) {
        if (!st->etcd) {
          try_join();
        } else if (!st->etcd_open) {
          st->next_join_attempt = t + st->cfg.retry_interval;
          st->etcd->open(self);
        }
      }
      if (st->leave_deadline && t >= *st->leave_deadline) {
        log(log_level::warning, "cluster: no leader removed this node within "
                                "2 s of leaving; leaving anyway");
        publish(st->members.remove_self(t));
        return;
      }
      // Redial members we lost (with back-off), and dial new ones. Of two
      // members, the one with the lower address dials first: two
      // connections dialed at once would both be set up, and one then
      // retired. If it has not connected within a grace period (its dial
      // failed or stalls), the higher one dials too.
      const auto& own = st->me().address;
      std::unordered_set<caf::node_id> unconnected;
      for (auto& m : st->members.members()) {
        if (m.node == st->members.self() || st->connected.count(m.node) > 0
            || (m.status != member_status::joining
                && m.status != member_status::up))
          continue;
        unconnected.insert(m.node);
        auto since = st->unconnected_since.emplace(m.node, t).first->second;
        if (m.address < own && t - since < dial_grace)
          continue;
        auto& d = st->dials[m.address];
        if (!d.in_flight && t >= d.next_attempt)
          dial(m.address);
      }
      // Heartbeats out (also while joining: the members that admitted us
      // are already judging us); verdicts on what came in.
      auto hb = make_heartbeat();
      for (auto& id : st->detectors->tracked())
        st->send(id, hb);
      for (auto& [id, phi, silent_for] : st->detectors->suspects(t)) {
        auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(
          silent_for);
        auto reason = make_error(
          errc::heartbeat_timeout,
          "member " + st->who(id) + " silent for "
            + std::to_string(silent.count()) + " ms (phi "
            + std::to_string(static_cast<int>(std::round(phi)))
            + " >= threshold "
            + std::to_string(static_cast<int>(st->cfg.detector.threshold))
            + ")");
        log(log_level::warning, "cluster: " + describe(reason));
        // Node-level verdict: its proxies report DOWN (as Erlang's
        // noconnection); membership decides separately (down-after). One
        // verdict per connection: the detector goes with it.
        st->detectors->forget(id);
        st->n->disconnect(id, reason);
      }
      for (auto i = st->unconnected_since.begin();
           i != st->unconnected_since.end();)
        i = unconnected.count(i->first) == 0 ? st->unconnected_since.erase(i)
                                             : std::next(i);
      if (st->members.self_status() == member_status::joining)
        return;
      if (st->etcd) {
        // etcd holds the state; the leader's decisions are carried out
        // there (the deletion comes back through the watch).
        st->spread();
        auto plan = st->members.plan_downing(t, st->cfg.down_after);
        if (plan.down_self) {
          log(log_level::warning, "cluster: this node reaches a minority of "
                                  "the members past down-after; it removes "
                                  "itself");
          publish(st->members.remove_self(t));
          return;
        }
        for (auto& id : plan.down)
          if (st->downing.insert(id).second) {
            log(log_level::warning, "cluster: downing " + st->who(id)
                                      + " (unreachable past down-after)");
            st->etcd->down_member(id);
          }
        return;
      }
      auto changes = st->members.tick(t, st->cfg.down_after);
      if (!changes.empty()) {
        publish(std::move(changes));
        if (!st->quarantined)
          st->gossip_to_all();
      }
      if (t >= st->next_gossip) {
        st->next_gossip = t + st->cfg.gossip_interval;
        std::vector<caf::node_id> peers;
        for (auto& id : st->connected)
          if (st->is_member(id))
            peers.push_back(id);
        if (!peers.empty())
          st->send_gossip(peers[st->rng() % peers.size()]);
      }
    },
  };
}

} // namespace relay::cluster_detail
