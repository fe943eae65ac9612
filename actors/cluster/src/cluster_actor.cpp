#include "cluster_actor.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "cluster_state.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"

// The cluster actor's common part: the API, node events, dialing,
// heartbeats and the detectors' verdicts. The backends' parts are in
// cluster_embedded.cpp and cluster_etcd.cpp (see cluster_state.hpp).

namespace relay::cluster_detail {

namespace {

// Redials of a lost member back off from retry-interval to this multiple.
constexpr int max_backoff_factor = 8;

// How long the higher address waits for the lower one to dial it.
constexpr auto dial_grace = std::chrono::seconds{3};

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

// -- cluster_state ----------------------------------------------------------

std::string cluster_state::who(const caf::node_id& id) const {
  if (auto m = members.find(id))
    return "'" + m->name + "' at " + m->address;
  return caf::to_string(id);
}

bool cluster_state::is_member(const caf::node_id& id) const {
  auto m = members.find(id);
  return m != nullptr && m->status < member_status::down;
}

void cluster_state::send(const caf::node_id& to, frame_buffer frame) {
  if (auto err = n->send_frame(to, std::move(frame)))
    log(log_level::debug, "cluster: cannot send to " + who(to) + ": "
                            + describe(err));
}

void cluster_state::spread() {
  if (!etcd) {
    gossip_to_all();
    return;
  }
  // Rows count once their observer is a member, so ours is written from up
  // on (the tick catches up on what changed before).
  if (!etcd_open || row_in_flight || members.self_status() != member_status::up)
    return;
  auto row = members.own_row();
  if (row.version != row_written) {
    row_in_flight = true;
    etcd->put_row(row);
  }
}

void cluster_state::gossip_to_all() {
  auto frame = make_frame(cluster_frame::gossip, members.snapshot());
  for (auto& id : connected)
    if (is_member(id) && id != members.self())
      send(id, frame);
}

void cluster_state::track(const caf::node_id& id) {
  // The connection counts as its first heartbeat: a member that never
  // sends one is suspected like one that stopped (Akka's
  // expected-response-after plays this part there).
  if (connected.count(id) > 0 && is_member(id) && id != members.self())
    detectors->track(id, clock::now());
}

void cluster_state::answer_waiters(const caf::error& err) {
  for (auto& rp : up_waiters)
    if (err)
      rp.deliver(err);
    else
      rp.deliver(caf::unit);
  up_waiters.clear();
}

void cluster_state::dial(const std::string& address) {
  auto& d = dials[address];
  if (d.in_flight)
    return;
  d.in_flight = true;
  auto me = caf::actor{self};
  auto node_ptr = n;
  auto g = gate;
  if (!g->enter()) {
    d.in_flight = false;
    return; // stopping
  }
  self->system().spawn<caf::detached + caf::hidden>(
    [node_ptr, me, address, g](caf::event_based_actor* helper) {
      helper_gate::pass pass{*g};
      auto result = node_ptr->connect(address);
      if (result)
        caf::anon_send(me, dial_done{address, *result, caf::none});
      else
        caf::anon_send(me, dial_done{address, caf::node_id{},
                                     std::move(result.error())});
      helper->quit();
    });
}

void cluster_state::publish(std::vector<member_event> events) {
  if (events.empty())
    return;
  auto self_id = members.self();
  bool self_gone = false;
  bool self_down = false; // (removed without "down": it left gracefully)
  for (auto& ev : events) {
    log(ev.kind == member_event_kind::unreachable
            || ev.kind == member_event_kind::down
          ? log_level::warning
          : log_level::info,
        describe_event(ev));
    for (auto& obs : observers)
      self->send(obs, ev);
    auto& id = ev.member.node;
    if (id == self_id) {
      if (ev.kind == member_event_kind::up) {
        joining = false;
        answer_waiters(caf::none);
      } else if (ev.kind == member_event_kind::down
                 || ev.kind == member_event_kind::removed) {
        self_gone = true;
        self_down |= ev.kind == member_event_kind::down;
      }
      continue;
    }
    track(id);
    if (ev.kind == member_event_kind::joining
        || ev.kind == member_event_kind::up) {
      // Maybe a new incarnation at a known address: the back-off earned
      // by the old one must not delay dialing it.
      if (auto d = dials.find(ev.member.address); d != dials.end()) {
        d->second.backoff = {};
        d->second.next_attempt = {};
      }
    }
    if (ev.kind == member_event_kind::down) {
      // Declared failed: whatever connection is left goes too, so that
      // its proxies report DOWN here as on the nodes that lost it.
      n->disconnect(id, make_error(errc::connection_closed,
                                   "member " + who(id) + " was declared down"));
    }
    if (ev.kind == member_event_kind::removed) {
      detectors->forget(id);
      dials.erase(ev.member.address);
      // A member that left waits to hear of its removal before it closes
      // its connections; it is no member now, so tell it directly.
      if (connected.count(id) > 0)
        send(id, make_frame(cluster_frame::gossip_reply, members.snapshot()));
    }
  }
  if (self_gone && !quarantined) {
    quarantined = true;
    joining = false;
    if (etcd)
      etcd->revoke(); // our keys (names included) go at once
    answer_waiters(make_error(errc::connection_closed,
                              "this node was removed from cluster '"
                                + cfg.cluster + "'"));
    for (auto& rp : leave_waiters)
      rp.deliver(caf::unit);
    leave_waiters.clear();
    if (!self_down)
      log(log_level::info, "cluster: this node left '" + cfg.cluster + "'");
    else
      log(log_level::warning,
          "cluster: this node is no longer a member of '" + cfg.cluster
            + "'; a new process (a new incarnation) may join again");
    for (auto& id : connected)
      if (members.find(id) != nullptr)
        n->disconnect(id, make_error(errc::connection_closed,
                                     "this node left the cluster"));
  }
}

// -- the actor ---------------------------------------------------------------

caf::behavior cluster_actor(caf::event_based_actor* self, node* n,
                            settings cfg, member_info self_info,
                            std::shared_ptr<detector_table> detectors,
                            std::shared_ptr<helper_gate> gate,
                            std::shared_ptr<etcd_session> etcd) {
  auto st = std::make_shared<cluster_state>(self, n, std::move(cfg),
                                            std::move(self_info));
  st->detectors = std::move(detectors);
  st->gate = std::move(gate);
  st->etcd = std::move(etcd);
  self->set_down_handler([st](caf::down_msg& dm) {
    auto& obs = st->observers;
    obs.erase(std::remove_if(obs.begin(), obs.end(),
                             [&](const caf::actor& x) {
                               return x.address() == dm.source;
                             }),
              obs.end());
  });
  self->send(self, tick_atom::value);
  caf::message_handler common{
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
      if (st->etcd)
        etcd_join(*st);
      else
        embedded_join(*st, std::move(seeds));
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
        st->publish(st->members.remove_self(clock::now())); // never admitted
        return caf::unit;
      }
      st->publish(st->members.leave(clock::now()));
      auto rp = self->make_response_promise();
      if (st->etcd)
        etcd_leave(*st, rp);
      else
        embedded_leave(*st, rp);
      return rp;
    },
    [=](why_atom) {
      return st->join_failure ? describe(st->join_failure) : st->join_problem;
    },
    [=](members_atom) {
      // A node that is no member (removed, or its lease lost) sees none.
      return st->quarantined ? std::vector<member_info>{}
                             : st->members.members();
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
      st->publish(st->members.observe(id, true, clock::now()));
      st->spread();
    },
    [=](peer_down& msg) {
      auto& id = msg.node;
      st->connected.erase(id);
      st->detectors->forget(id);
      if (!st->is_member(id) || st->quarantined)
        return;
      st->publish(st->members.observe(id, false, clock::now()));
      st->spread();
    },
    [=](dial_done& msg) {
      auto& d = st->dials[msg.address];
      d.in_flight = false;
      if (!st->verifying.empty() && msg.address == st->verifying) {
        etcd_verified(*st, msg);
        return;
      }
      if (msg.error) {
        d.backoff = d.backoff.count() == 0
                      ? st->cfg.retry_interval
                      : std::min(d.backoff * 2, st->cfg.retry_interval
                                                  * max_backoff_factor);
        d.next_attempt = clock::now() + d.backoff;
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
            auto events = st->members.observe(m.node, false, clock::now());
            if (!events.empty()) {
              st->publish(std::move(events));
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
    // -- timer ----------------------------------------------------------------
    [=](tick_atom) {
      auto t = clock::now();
      self->delayed_send(self, st->cfg.heartbeat_interval, tick_atom::value);
      if (st->quarantined)
        return;
      if (st->leave_deadline && t >= *st->leave_deadline) {
        log(log_level::warning, "cluster: no leader removed this node within "
                                "2 s of leaving; leaving anyway");
        st->publish(st->members.remove_self(t));
        return;
      }
      // Redial members we lost (with back-off), and dial new ones. Of two
      // members, the one with the lower address dials first: two
      // connections dialed at once would both be set up, and one then
      // retired. If it has not connected within a grace period (its dial
      // failed or stalls), the higher one dials too.
      const auto& own = st->me().address;
      std::unordered_set<caf::node_id> unconnected;
      // (A node refused by the members has nobody to dial.)
      for (auto& m : st->join_failure ? std::vector<member_info>{}
                                      : st->members.members()) {
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
          st->dial(m.address);
      }
      // Heartbeats out (also while joining: the members that admitted us
      // are already judging us); verdicts on what came in.
      auto hb = make_heartbeat();
      for (auto& id : st->detectors->tracked())
        st->send(id, hb);
      // A member whose connection this node stopped reading (back-pressure:
      // our actors lag behind its messages) is silent because of us.
      for (auto& p : st->n->peers())
        if (p.inbound_paused)
          st->detectors->heartbeat(p.node, t);
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
      if (st->etcd)
        etcd_tick(*st, t);
      else
        embedded_tick(*st, t);
    },
  };
  auto backend = st->etcd ? etcd_handlers(st) : embedded_handlers(st);
  return common.or_else(backend);
}

} // namespace relay::cluster_detail
