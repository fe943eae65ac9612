#include "registry_actor.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <tuple>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include "cluster_actor.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"
#include "relay/node_config.hpp"

namespace relay::cluster_detail {

void add_registry_types(node_config& cfg) {
  cfg.add_message_type<registry_entry>();
  cfg.add_message_type<registry_sync>();
  cfg.add_message_type<global_name_conflict>();
}

namespace {

using namespace std::chrono_literals;

// Bound on one registry's answer to a lock or sync request.
constexpr auto lock_reply_timeout = 2s;
constexpr auto lookup_reply_timeout = 5s;
// A lock whose requester vanished without releasing it expires.
constexpr auto lock_lifetime = 5s;
// Attempts of a contended registration before it fails.
constexpr int max_lock_attempts = 10;
// Between lookups of a member's registry that failed.
constexpr auto lookup_retry = 500ms;
// How long a registration waits for the registries of reachable members.
constexpr auto quorum_wait = 5s;
// Points per member on the consistent-hash ring.
constexpr int ring_points = 64;

using reg_clock = std::chrono::steady_clock;

// Ordinary messages of the registry (local).
struct peer_found {
  caf::node_id node;
  caf::actor registry;
};
struct peer_lookup_failed {
  caf::node_id node;
};
struct retry_registration {
  uint64_t id;
};
struct retry_commit {
  uint64_t id;
};
struct retry_lookup {
  caf::node_id node;
};

struct lock_info {
  caf::actor requester;
  uint64_t request = 0;
  reg_clock::time_point expires;
};

struct registration {
  std::string name;
  caf::actor holder;
  caf::response_promise rp;
  int attempt = 0;
  uint64_t request = 0;
  size_t waiting = 0;
  std::vector<caf::actor> granted;
  bool denied = false;
  caf::actor owner; // a holder found during the round
  reg_clock::time_point deadline; // for the quorum to be known
  std::vector<caf::actor> asked;  // the quorum of the current round
};

struct state {
  node* n = nullptr;
  caf::actor cluster;
  std::mt19937_64 rng{std::random_device{}()};
  // Members (not this node) that are up, and whether reachable.
  std::map<caf::node_id, bool> members;
  std::unordered_map<caf::node_id, caf::actor> peers;
  std::set<caf::node_id> looking_up;
  // Groups: every member, local and remote.
  std::map<std::string, std::vector<caf::actor>> groups;
  std::map<std::string, uint64_t> turns;
  // Names: the whole table; locks held for registrations in progress.
  std::map<std::string, caf::actor> names;
  std::map<std::string, lock_info> locks;
  std::map<uint64_t, registration> pending;
  uint64_t next_request = 1;
  // Whether this node is an up member (registrations need it).
  bool self_up = false;
  // Local actors monitored (members or holders).
  std::set<caf::actor_addr> watched;
  // The etcd backend (null: embedded), which agrees on names instead of the
  // lock rounds.
  std::shared_ptr<etcd_session> etcd;

  bool is_local(const caf::actor& x) const {
    return x && x->node() == n->id();
  }

  // Registries of members that count for a registration.
  std::vector<caf::actor> quorum() const {
    std::vector<caf::actor> result;
    for (auto& [id, reachable] : members)
      if (reachable)
        if (auto i = peers.find(id); i != peers.end())
          result.push_back(i->second);
    return result;
  }

  // Whether every reachable member's registry is known.
  bool quorum_known() const {
    for (auto& [id, reachable] : members)
      if (reachable && peers.count(id) == 0)
        return false;
    return true;
  }

  std::vector<caf::actor> all_peers() const {
    std::vector<caf::actor> result;
    for (auto& [id, p] : peers)
      result.push_back(p);
    return result;
  }

  bool locked_by_other(const std::string& name, const caf::actor& requester,
                       uint64_t request) {
    auto i = locks.find(name);
    if (i == locks.end())
      return false;
    if (i->second.expires < reg_clock::now()) {
      locks.erase(i);
      return false;
    }
    return i->second.requester != requester || i->second.request != request;
  }

  void release(const std::string& name, const caf::actor& requester,
               uint64_t request) {
    auto i = locks.find(name);
    if (i != locks.end() && i->second.requester == requester
        && i->second.request == request)
      locks.erase(i);
  }

  static bool wins(const caf::actor& x, const caf::actor& y) {
    return std::make_tuple(x->node(), x->id())
           < std::make_tuple(y->node(), y->id());
  }
};

using state_ptr = std::shared_ptr<state>;

void remove_member(std::vector<caf::actor>& xs, const caf::actor& x) {
  xs.erase(std::remove(xs.begin(), xs.end(), x), xs.end());
}

} // namespace

} // namespace relay::cluster_detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::peer_found)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::peer_lookup_failed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::retry_registration)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::retry_commit)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(relay::cluster_detail::retry_lookup)

namespace relay::cluster_detail {

caf::behavior registry_actor(caf::event_based_actor* self, node* n,
                             caf::actor cluster,
                             std::shared_ptr<helper_gate> gate,
                             std::shared_ptr<etcd_session> etcd) {
  auto st = std::make_shared<state>();
  st->n = n;
  st->cluster = cluster;
  st->etcd = std::move(etcd);
  // Watches a local actor so that its names and memberships end with it.
  auto watch = [self, st](const caf::actor& x) {
    if (st->watched.insert(x.address()).second)
      self->monitor(x);
  };
  auto lookup = [self, st, gate](const caf::node_id& id) {
    if (st->peers.count(id) > 0 || !st->looking_up.insert(id).second)
      return;
    auto me = caf::actor{self};
    auto n = st->n;
    if (!gate->enter()) {
      st->looking_up.erase(id);
      return; // stopping
    }
    self->system().spawn<caf::detached + caf::hidden>(
      [n, me, id, gate](caf::event_based_actor* helper) {
        helper_gate::pass pass{*gate};
        auto found = n->lookup(id, registry_name);
        if (found && *found)
          caf::anon_send(me, peer_found{id, *found});
        else
          caf::anon_send(me, peer_lookup_failed{id});
        helper->quit();
      });
  };
  // Drops what node `id` owned: its members and its names.
  auto forget_node = [st](const caf::node_id& id) {
    for (auto& [group, xs] : st->groups)
      xs.erase(std::remove_if(xs.begin(), xs.end(),
                              [&](const caf::actor& x) {
                                return x->node() == id;
                              }),
               xs.end());
    for (auto i = st->names.begin(); i != st->names.end();)
      i = i->second->node() == id ? st->names.erase(i) : std::next(i);
    for (auto i = st->locks.begin(); i != st->locks.end();)
      i = i->second.requester->node() == id ? st->locks.erase(i)
                                            : std::next(i);
  };
  // Adds a name learned from another node, resolving a clash.
  auto learn_name = [self, st, watch](const std::string& name,
                                      const caf::actor& holder) {
    if (!holder)
      return;
    // Watched even though its node's registry is: that one may not be
    // known here yet, and the entry must not outlive the holder.
    watch(holder);
    auto i = st->names.find(name);
    if (i == st->names.end()) {
      st->names.emplace(name, holder);
      return;
    }
    if (i->second == holder)
      return;
    if (st->etcd) {
      // etcd lets one node hold a name at a time, so two entries mean one
      // is stale (a holder that went, a late message). A local holder
      // entered the table only after etcd agreed: it stays. Otherwise the
      // newer news wins.
      if (!st->is_local(i->second))
        i->second = holder;
      return;
    }
    auto winner = state::wins(holder, i->second) ? holder : i->second;
    auto loser = winner == holder ? i->second : holder;
    i->second = winner;
    log(log_level::warning, "cluster: name '" + name
                              + "' was held on both sides of a partition; "
                                "kept the holder on node "
                              + caf::to_string(winner->node()));
    if (st->is_local(loser)) {
      // Only the loser's node tells it, once.
      self->send(loser, global_name_conflict{name, winner});
      for (auto& p : st->all_peers())
        self->send(p, gl_unreg_atom::value, name, loser);
    }
  };
  // This node's own entries, for a peer that discovers us or that we found.
  auto local_sync = [st] {
    registry_sync sync;
    for (auto& [group, xs] : st->groups)
      for (auto& x : xs)
        if (st->is_local(x))
          sync.groups.push_back(registry_entry{group, x});
    for (auto& [name, holder] : st->names)
      if (st->is_local(holder))
        sync.names.push_back(registry_entry{name, holder});
    return sync;
  };
  // Takes a peer's local entries (only those of actors on its node).
  auto apply_sync = [st, learn_name, watch](const caf::node_id& node,
                                            const registry_sync& sync) {
    for (auto& e : sync.groups)
      if (e.actor && e.actor->node() == node) {
        auto& xs = st->groups[e.key];
        if (std::find(xs.begin(), xs.end(), e.actor) == xs.end()) {
          xs.push_back(e.actor);
          watch(e.actor);
        }
      }
    for (auto& e : sync.names)
      if (e.actor && e.actor->node() == node)
        learn_name(e.key, e.actor);
  };
  // Both sides' local entries, in one exchange: a peer that does not count
  // us as a member yet refuses, and we look it up again later.
  auto resync = [self, st, local_sync, apply_sync](const caf::node_id& node,
                                                   const caf::actor& peer) {
    self->request(peer, lookup_reply_timeout, local_sync())
      .then([=](registry_sync& theirs) { apply_sync(node, theirs); },
            [=](caf::error& err) {
              log(log_level::info, "cluster: registry of node "
                                     + caf::to_string(node)
                                     + " refused to sync (" + describe(err)
                                     + "); retrying");
              if (auto i = st->peers.find(node);
                  i != st->peers.end() && i->second == peer) {
                self->demonitor(peer);
                st->peers.erase(i);
              }
              self->delayed_send(self, lookup_retry, retry_lookup{node});
            });
  };
  // Finishes a lock round of registration `id` once every answer is in.
  std::shared_ptr<std::function<void(uint64_t)>> finish
    = std::make_shared<std::function<void(uint64_t)>>();
  auto start_round = [self, st, finish](uint64_t id) {
    auto i = st->pending.find(id);
    if (i == st->pending.end())
      return;
    auto& reg = i->second;
    ++reg.attempt;
    reg.request = st->next_request++;
    reg.granted.clear();
    reg.denied = false;
    reg.owner = nullptr;
    if (auto owner = st->names.find(reg.name); owner != st->names.end()) {
      reg.rp.deliver(make_error(errc::already_registered,
                                "name '" + reg.name + "' is held by actor "
                                  + std::to_string(owner->second->id())
                                  + " on node "
                                  + caf::to_string(owner->second->node())));
      st->pending.erase(i);
      return;
    }
    auto me = caf::actor{self};
    if (st->locked_by_other(reg.name, me, reg.request)) {
      reg.denied = true;
      reg.waiting = 0;
      (*finish)(id);
      return;
    }
    if (!st->quorum_known()) {
      // A reachable member whose registry we have not found yet must not
      // be left out of the agreement: wait for it (bounded), without
      // spending an attempt.
      --reg.attempt;
      if (reg_clock::now() >= reg.deadline) {
        reg.rp.deliver(make_error(errc::lookup_timeout,
                                  "name '" + reg.name
                                    + "': the registries of some reachable "
                                      "members were not found in time"));
        st->pending.erase(i);
        return;
      }
      self->delayed_send(self, 20ms, retry_registration{id});
      return;
    }
    st->locks[reg.name] = lock_info{me, reg.request,
                                    reg_clock::now() + lock_lifetime};
    auto quorum = st->quorum();
    reg.asked = quorum;
    reg.waiting = quorum.size();
    if (quorum.empty()) {
      (*finish)(id);
      return;
    }
    for (auto& p : quorum) {
      self
        ->request(p, lock_reply_timeout, gl_lock_atom::value, reg.name,
                  reg.request)
        .then(
          [st, finish, id, p](bool granted, caf::actor owner) {
            auto j = st->pending.find(id);
            if (j == st->pending.end())
              return;
            if (granted)
              j->second.granted.push_back(p);
            else
              j->second.denied = true;
            if (owner)
              j->second.owner = owner;
            if (--j->second.waiting == 0)
              (*finish)(id);
          },
          [st, finish, id](caf::error&) {
            auto j = st->pending.find(id);
            if (j == st->pending.end())
              return;
            j->second.denied = true; // unanswered: retry with a new quorum
            if (--j->second.waiting == 0)
              (*finish)(id);
          });
    }
  };
  // Takes the name for `reg.holder` and tells `peers`. Answers once every
  // one of them has the name (as global:register_name does), so that a
  // lookup anywhere after the return finds it. A member that does not
  // confirm in time is gone or going; it learns the name on its next sync
  // if it comes back.
  auto commit = [self, st, watch](registration& reg,
                                  const std::vector<caf::actor>& peers) {
    st->names[reg.name] = reg.holder;
    watch(reg.holder);
    auto rp = reg.rp;
    auto left = std::make_shared<size_t>(peers.size());
    if (*left == 0)
      rp.deliver(caf::unit);
    for (auto& p : peers)
      self
        ->request(p, lock_reply_timeout, gl_commit_atom::value, reg.name,
                  reg.holder, reg.request)
        .then(
          [rp, left]() mutable {
            if (--*left == 0)
              rp.deliver(caf::unit);
          },
          [rp, left](caf::error&) mutable {
            if (--*left == 0)
              rp.deliver(caf::unit);
          });
  };
  *finish = [self, st, commit](uint64_t id) {
    auto i = st->pending.find(id);
    if (i == st->pending.end())
      return;
    auto& reg = i->second;
    auto me = caf::actor{self};
    if (!reg.denied && !reg.owner && st->names.count(reg.name) == 0) {
      st->release(reg.name, me, reg.request);
      commit(reg, reg.granted);
      st->pending.erase(i);
      return;
    }
    // Everyone asked, not only those whose grant arrived in time: a late
    // grant would otherwise keep its lock until it expires.
    for (auto& p : reg.asked)
      self->send(p, gl_release_atom::value, reg.name, reg.request);
    st->release(reg.name, me, reg.request);
    if (reg.owner) {
      reg.rp.deliver(make_error(errc::already_registered,
                                "name '" + reg.name + "' is held by actor "
                                  + std::to_string(reg.owner->id())
                                  + " on node "
                                  + caf::to_string(reg.owner->node())));
      st->pending.erase(i);
      return;
    }
    if (reg.attempt >= max_lock_attempts) {
      reg.rp.deliver(make_error(errc::lookup_timeout,
                                "name '" + reg.name + "' stayed locked by "
                                  "other registrations for "
                                  + std::to_string(max_lock_attempts)
                                  + " attempts"));
      st->pending.erase(i);
      return;
    }
    // Contention: back off at random (Erlang's set_lock does the same).
    std::uniform_int_distribution<int> ms{5, 20 * reg.attempt + 20};
    self->delayed_send(self, std::chrono::milliseconds{ms(st->rng)},
                       retry_registration{id});
  };
  // Whether a message comes from the registry of a member.
  auto from_member = [self, st]() {
    auto& sender = self->current_sender();
    if (!sender)
      return false;
    auto ok = st->members.count(sender->node()) > 0
              || st->peers.count(sender->node()) > 0;
    if (!ok)
      log(log_level::info, "cluster: registry ignored a message from "
                                "node "
                                + caf::to_string(sender->node())
                                + ", which is not a member");
    return ok;
  };
  self->set_down_handler([st, self, forget_node](caf::down_msg& dm) {
    // A peer registry: its node is gone (or stopping).
    for (auto i = st->peers.begin(); i != st->peers.end(); ++i)
      if (i->second.address() == dm.source) {
        auto id = i->first;
        st->peers.erase(i);
        forget_node(id);
        return;
      }
    st->watched.erase(dm.source);
    if (dm.source.node() != st->n->id()) {
      // A remote member or holder (or its connection) is gone: drop what
      // it had here; its own node tells the others, if it still can.
      for (auto& [group, xs] : st->groups)
        xs.erase(std::remove_if(xs.begin(), xs.end(),
                                [&](const caf::actor& x) {
                                  return x.address() == dm.source;
                                }),
                 xs.end());
      for (auto i = st->names.begin(); i != st->names.end();)
        i = i->second.address() == dm.source ? st->names.erase(i)
                                             : std::next(i);
      return;
    }
    // A local actor: its names and memberships end with it.
    std::vector<std::pair<std::string, caf::actor>> left, unregistered;
    for (auto& [group, xs] : st->groups)
      for (auto& x : xs)
        if (x.address() == dm.source)
          left.emplace_back(group, x);
    for (auto& [name, holder] : st->names)
      if (holder.address() == dm.source)
        unregistered.emplace_back(name, holder);
    for (auto& [group, x] : left) {
      remove_member(st->groups[group], x);
      for (auto& p : st->all_peers())
        self->send(p, pg_leave_atom::value, group, x);
    }
    for (auto& [name, holder] : unregistered) {
      st->names.erase(name);
      if (st->etcd)
        st->etcd->release_name(name, holder);
      for (auto& p : st->all_peers())
        self->send(p, gl_unreg_atom::value, name, holder);
    }
  });
  caf::anon_send(cluster, monitor_atom::value, caf::actor{self});
  return {
    // -- membership ---------------------------------------------------------
    [=](const member_event& ev) {
      auto& id = ev.member.node;
      if (id == n->id()) {
        st->self_up = ev.kind == member_event_kind::up
                      || (st->self_up
                          && (ev.kind == member_event_kind::reachable
                              || ev.kind == member_event_kind::unreachable));
        return;
      }
      switch (ev.kind) {
        case member_event_kind::up:
        case member_event_kind::reachable:
          st->members[id] = true;
          if (auto p = st->peers.find(id); p != st->peers.end())
            resync(id, p->second); // it may have missed names meanwhile
          else
            lookup(id);
          break;
        case member_event_kind::unreachable:
          if (st->members.count(id) > 0)
            st->members[id] = false;
          break;
        case member_event_kind::joining:
          break;
        default: // left, down, removed
          // What its node had goes with it, even where its registry was
          // never found (its DOWN would have done this).
          st->members.erase(id);
          forget_node(id);
      }
    },
    [=](peer_found& msg) {
      st->looking_up.erase(msg.node);
      if (st->members.count(msg.node) == 0 || st->peers.count(msg.node) > 0)
        return;
      st->peers.emplace(msg.node, msg.registry);
      self->monitor(msg.registry);
      resync(msg.node, msg.registry);
    },
    [=](peer_lookup_failed& msg) {
      st->looking_up.erase(msg.node);
      if (st->members.count(msg.node) > 0 && st->peers.count(msg.node) == 0)
        self->delayed_send(self, lookup_retry, retry_lookup{msg.node});
    },
    [=](retry_lookup& msg) {
      if (st->members.count(msg.node) > 0)
        lookup(msg.node);
    },
    // -- between registries ---------------------------------------------------
    [=](registry_sync& sync) -> caf::result<registry_sync> {
      if (!from_member())
        return make_error(errc::peer_rejected,
                          "not a member of this node's cluster (yet)");
      apply_sync(self->current_sender()->node(), sync);
      return local_sync();
    },
    [=](gl_lock_atom, const std::string& name, uint64_t request)
      -> caf::result<bool, caf::actor> {
      if (!from_member())
        return {false, caf::actor{}};
      auto requester = caf::actor_cast<caf::actor>(self->current_sender());
      if (auto i = st->names.find(name); i != st->names.end())
        return {false, i->second};
      if (st->locked_by_other(name, requester, request))
        return {false, caf::actor{}};
      st->locks[name] = lock_info{requester, request,
                                  reg_clock::now() + lock_lifetime};
      return {true, caf::actor{}};
    },
    [=](gl_commit_atom, const std::string& name, caf::actor holder,
        uint64_t request) {
      if (!from_member() || !holder
          || holder->node() != self->current_sender()->node())
        return; // a node registers only its own actors
      auto requester = caf::actor_cast<caf::actor>(self->current_sender());
      st->release(name, requester, request);
      learn_name(name, holder);
    },
    [=](gl_release_atom, const std::string& name, uint64_t request) {
      if (!from_member())
        return;
      st->release(name, caf::actor_cast<caf::actor>(self->current_sender()),
                  request);
    },
    [=](gl_unreg_atom, const std::string& name, caf::actor holder) {
      if (!from_member() || !holder
          || holder->node() != self->current_sender()->node())
        return; // a node withdraws only its own actors' names
      auto i = st->names.find(name);
      if (i != st->names.end() && i->second == holder)
        st->names.erase(i);
    },
    [=](pg_join_atom, const std::string& group, caf::actor member) {
      if (!from_member() || !member
          || member->node() != self->current_sender()->node())
        return; // a node adds only its own actors
      auto& xs = st->groups[group];
      if (std::find(xs.begin(), xs.end(), member) == xs.end()) {
        xs.push_back(member);
        watch(member);
      }
    },
    [=](pg_leave_atom, const std::string& group, caf::actor member) {
      if (!from_member())
        return;
      remove_member(st->groups[group], member);
    },
    [=](retry_registration& msg) {
      start_round(msg.id);
    },
    // -- API (local) ------------------------------------------------------------
    [=](reg_name_atom, const std::string& name, caf::actor holder)
      -> caf::result<caf::unit_t> {
      if (!holder || !st->is_local(holder))
        return make_error(errc::invalid_argument,
                          "only a live local actor can hold a cluster-wide "
                          "name");
      if (!st->self_up)
        return make_error(errc::invalid_argument,
                          "this node is not an up member of the cluster");
      if (auto i = st->names.find(name); st->etcd && i != st->names.end())
        return make_error(errc::already_registered,
                          "name '" + name + "' is held by actor "
                            + std::to_string(i->second->id()) + " on node "
                            + caf::to_string(i->second->node()));
      auto id = st->next_request++;
      registration reg;
      reg.deadline = reg_clock::now() + quorum_wait;
      reg.name = name;
      reg.holder = holder;
      reg.request = id;
      reg.rp = self->make_response_promise();
      auto rp = reg.rp;
      st->pending.emplace(id, std::move(reg));
      if (st->etcd) {
        // etcd agrees (a transaction under this node's lease); then every
        // member's table learns it as in the embedded backend.
        st->etcd->claim_name(name, holder, self, id);
        return rp;
      }
      start_round(id);
      return rp;
    },
    [=](etcd_claimed& msg) {
      auto i = st->pending.find(msg.request);
      if (i == st->pending.end())
        return;
      auto& reg = i->second;
      if (msg.error) {
        reg.rp.deliver(msg.error);
        st->pending.erase(i);
        return;
      }
      // Ours (etcd agreed); the others learn it below.
      st->names[reg.name] = reg.holder;
      watch(reg.holder);
      self->send(self, retry_commit{msg.request});
    },
    [=](retry_commit& msg) {
      // As in the embedded backend, the registration returns once every
      // reachable member's registry has the name (found within
      // quorum_wait).
      auto i = st->pending.find(msg.id);
      if (i == st->pending.end())
        return;
      auto& reg = i->second;
      if (!st->quorum_known() && reg_clock::now() < reg.deadline) {
        self->delayed_send(self, 20ms, retry_commit{msg.id});
        return;
      }
      commit(reg, st->quorum());
      st->pending.erase(i);
    },
    [=](unreg_name_atom, const std::string& name) {
      auto i = st->names.find(name);
      if (i == st->names.end() || !st->is_local(i->second))
        return false;
      auto holder = i->second;
      st->names.erase(i);
      if (st->etcd)
        st->etcd->release_name(name, holder);
      for (auto& p : st->all_peers())
        self->send(p, gl_unreg_atom::value, name, holder);
      return true;
    },
    [=](whereis_atom, const std::string& name) {
      auto i = st->names.find(name);
      return i == st->names.end() ? caf::actor{} : i->second;
    },
    [=](names_atom) {
      std::vector<std::string> result;
      for (auto& [name, holder] : st->names)
        result.push_back(name);
      return result;
    },
    [=](grp_join_atom, const std::string& group, caf::actor member)
      -> caf::result<caf::unit_t> {
      if (!member || !st->is_local(member))
        return make_error(errc::invalid_argument,
                          "only a live local actor can join a group");
      auto& xs = st->groups[group];
      if (std::find(xs.begin(), xs.end(), member) != xs.end())
        return caf::unit;
      xs.push_back(member);
      watch(member);
      for (auto& p : st->all_peers())
        self->send(p, pg_join_atom::value, group, member);
      return caf::unit;
    },
    [=](grp_leave_atom, const std::string& group, caf::actor member) {
      auto& xs = st->groups[group];
      auto before = xs.size();
      remove_member(xs, member);
      if (xs.size() == before)
        return false;
      for (auto& p : st->all_peers())
        self->send(p, pg_leave_atom::value, group, member);
      return true;
    },
    [=](grp_members_atom, const std::string& group) {
      auto i = st->groups.find(group);
      return i == st->groups.end() ? std::vector<caf::actor>{} : i->second;
    },
    [=](grp_pick_atom, const std::string& group, int policy,
        const std::string& key) {
      auto i = st->groups.find(group);
      if (i == st->groups.end() || i->second.empty())
        return caf::actor{};
      auto& xs = i->second;
      switch (static_cast<pick_policy>(policy)) {
        case pick_policy::random:
          return xs[st->rng() % xs.size()];
        case pick_policy::round_robin:
          return xs[st->turns[group]++ % xs.size()];
        case pick_policy::consistent_hash:
          break;
      }
      // The member whose ring point follows the key's hash.
      auto key_hash = message_registry::id_of(key);
      const caf::actor* best = nullptr;
      uint64_t best_distance = 0;
      for (auto& x : xs) {
        auto base = caf::to_string(x->node()) + "/" + std::to_string(x->id());
        for (int p = 0; p < ring_points; ++p) {
          auto point = message_registry::id_of(base + "#" + std::to_string(p));
          auto distance = point - key_hash; // wraps: clockwise distance
          if (best == nullptr || distance < best_distance) {
            best = &x;
            best_distance = distance;
          }
        }
      }
      return *best;
    },
  };
}

} // namespace relay::cluster_detail
