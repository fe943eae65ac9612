// Sessions that survive a broken connection, the node's half: a route whose
// connection broke stays, served by the broken peer's suspended session,
// which keeps what is sent; the side that dialed redials with back-off;
// whichever side reaches relay.heartbeat-timeout after the break first
// gives up and loses the node as a close does. resume.cpp has the peer's
// half and the protocol; docs/reconnect.md the timeline.

#include <algorithm>
#include <chrono>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "node_impl.hpp"
#include "peer.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"
#include "session.hpp"
#include "wire.hpp"

namespace relay {

namespace {

using redial_atom = caf::atom_constant<caf::atom("rredial")>;
using give_up_atom = caf::atom_constant<caf::atom("rgiveup")>;

/// The first pause between redials; doubles per failed attempt up to
/// max_backoff, with +-25 % jitter so that many nodes cut at once do not
/// redial in lockstep.
constexpr std::chrono::milliseconds first_backoff{10};
constexpr std::chrono::milliseconds max_backoff{250};

std::string ms_text(std::chrono::milliseconds x) {
  return std::to_string(x.count()) + " ms";
}

/// Waits for the resume of `broken`'s session: gives up at the deadline,
/// or (`dial`, the side that dialed) redials until then. The dialer is
/// detached (a redial blocks in connect()) and its own deadline is another
/// of these actors.
caf::behavior resume_actor(caf::event_based_actor* self, node_impl* node,
                           std::shared_ptr<peer> broken, caf::timespan window,
                           bool dial) {
  auto backoff = std::make_shared<std::chrono::milliseconds>(first_backoff);
  auto deadline = std::chrono::steady_clock::now() + window;
  if (dial)
    self->send(self, redial_atom::value);
  else
    self->delayed_send(self, window, give_up_atom::value);
  auto window_ms = std::chrono::duration_cast<std::chrono::milliseconds>(window);
  return {
    [=](give_up_atom) {
      node->give_up(*broken,
                    make_error(errc::node_unreachable,
                               "the connection to " + broken->display_name()
                                 + " broke and did not resume within "
                                 + ms_text(window_ms)
                                 + " (relay.heartbeat-timeout)"));
      self->quit();
    },
    [=](redial_atom) {
      auto s = broken->current_session();
      if (!s || !s->suspended()) {
        self->quit(); // resumed (or given up) meanwhile
        return;
      }
      caf::error why;
      switch (node->redial(broken, why)) {
        case node_impl::redial_result::resumed:
          self->quit();
          return;
        case node_impl::redial_result::final:
          node->give_up(*broken, why);
          self->quit();
          return;
        case node_impl::redial_result::retry:
          break;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        self->quit(); // the deadline actor gives up
        return;
      }
      static thread_local std::minstd_rand rng{std::random_device{}()};
      auto jitter = std::uniform_real_distribution<double>{0.75, 1.25}(rng);
      auto pause = std::chrono::milliseconds{
        static_cast<int64_t>(static_cast<double>(backoff->count()) * jitter)};
      *backoff = std::min(*backoff * 2, max_backoff);
      self->delayed_send(self, std::min(pause, left), redial_atom::value);
    },
  };
}

} // namespace

bool node_impl::can_resume(bool initiator, const std::string& uri,
                           const std::string& scheme) const {
  if (!cfg_.resume)
    return false;
  if (!initiator)
    return true;
  if (uri.empty())
    return false;
  auto t = transports_.find(scheme);
  return t != nullptr && t->can_redial();
}

void node_impl::begin_resume(std::shared_ptr<peer> broken,
                             const caf::error& reason) {
  auto dial = broken->initiator();
  log(log_level::info,
      "connection to " + broken->display_name() + " broke ("
        + describe(reason) + "); "
        + (dial ? "redialing " + broken->uri() : std::string{"waiting for it to redial"})
        + " to resume the session within "
        + ms_text(std::chrono::duration_cast<std::chrono::milliseconds>(
          cfg_.heartbeat_timeout)));
  // The deadline runs on its own actor: a redial blocks in connect() and
  // the handshake, which must not delay it.
  std::vector<caf::actor> spawned;
  spawned.push_back(system_.spawn<caf::hidden>(resume_actor, this, broken,
                                               cfg_.heartbeat_timeout, false));
  if (dial)
    spawned.push_back(system_.spawn<caf::detached + caf::hidden>(
      resume_actor, this, broken, cfg_.heartbeat_timeout, true));
  std::lock_guard<std::mutex> guard{peers_mtx_};
  // Forget the ones that finished.
  resumers_.erase(std::remove_if(resumers_.begin(), resumers_.end(),
                                 [](const caf::actor& x) {
                                   auto ptr = caf::actor_cast<
                                     caf::abstract_actor*>(x);
                                   return ptr->getf(
                                     caf::abstract_actor::is_terminated_flag);
                                 }),
                  resumers_.end());
  for (auto& a : spawned)
    resumers_.push_back(std::move(a));
}

node_impl::redial_result node_impl::redial(const std::shared_ptr<peer>& broken,
                                           caf::error& why) {
  auto ep = endpoint::parse(broken->uri());
  if (!ep) {
    why = std::move(ep.error());
    return redial_result::final;
  }
  auto t = find_transport(*ep);
  if (!t) {
    why = std::move(t.error());
    return redial_result::final;
  }
  auto conn = (*t)->connect(*ep);
  if (!conn) {
    why = std::move(conn.error());
    return redial_result::retry;
  }
  auto p = start_peer(std::move(*conn), true, broken->uri(), broken->scheme(),
                      trust_level::trusted, broken);
  if (!p) {
    why = make_error(errc::connection_closed, "node is shutting down");
    return redial_result::final;
  }
  auto use = await_handshake(p);
  if (use)
    return redial_result::resumed;
  why = std::move(use.error());
  if (is(why, errc::session_lost) || is(why, errc::protocol_error))
    return redial_result::final;
  return redial_result::retry;
}

caf::error node_impl::continue_session(route& r,
                                       const std::shared_ptr<peer>& fresh,
                                       const std::shared_ptr<peer>& broken,
                                       uint64_t remote_dispatched) {
  auto s = broken->current_session();
  auto after = s ? s->suspended_for() : std::chrono::milliseconds{0};
  auto resent = fresh->adopt_session(broken, remote_dispatched);
  if (!resent)
    return std::move(resent.error());
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    r.set(fresh);
  }
  ++resumed_sessions;
  log(log_level::info, "resumed the session with " + fresh->display_name()
                         + " after " + ms_text(after) + "; resent "
                         + std::to_string(*resent) + " frames");
  return caf::none;
}

caf::error node_impl::resume_session(const std::shared_ptr<peer>& fresh,
                                     const wire::resume_info& info) {
  std::shared_ptr<peer> broken;
  std::shared_ptr<route> r;
  caf::error failed;
  {
    std::lock_guard<std::recursive_mutex> order{events_.order_mutex()};
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      if (stopping_)
        return make_error(errc::connection_closed, "node is shutting down");
      auto j = routes_.find(fresh->remote_id());
      if (j == routes_.end())
        return make_error(errc::session_lost,
                          "no session with this node (given up, or never "
                          "had one)");
      r = j->second;
      broken = r->current();
    }
    auto s = broken ? broken->current_session() : nullptr;
    if (!s || broken->initiator() || s->token() != info.serial)
      return make_error(errc::session_lost,
                        "no such session with this node (it was given up, "
                        "or replaced)");
    // Through a listener of the same kind and trust only: an untrusted
    // peer that claims the node's id must not take over its route.
    if (broken->scheme() != fresh->scheme()
        || broken->trusted() != fresh->trusted())
      return make_error(errc::session_lost,
                        "the session was with a " + broken->scheme()
                          + " connection of another trust level or "
                            "transport");
    if (broken->current_state() != peer::state::closed) {
      // The remote saw the break first (or only): ours is half open.
      broken->close_as_broken(make_error(
        errc::connection_closed, "replaced by a resuming connection"));
      return make_error(errc::resume_pending,
                        "the broken connection is still closing here");
    }
    if (s->ended())
      return make_error(errc::session_lost, "the session was given up");
    if (!s->suspended())
      return make_error(errc::resume_pending,
                        "the broken connection is still closing here");
    failed = continue_session(*r, fresh, broken, info.dispatched);
    if (!failed)
      return caf::none;
  }
  // An impossible count is refused, and the session still waits for its
  // real peer (this one may be an impostor); evicted frames end it.
  if (is(failed, errc::session_lost))
    give_up(*broken, failed);
  return make_error(errc::session_lost, describe(failed));
}

caf::error node_impl::complete_resume(const std::shared_ptr<peer>& fresh,
                                      uint64_t remote_dispatched) {
  const auto& broken = fresh->resumes();
  caf::error failed;
  {
    std::lock_guard<std::recursive_mutex> order{events_.order_mutex()};
    std::shared_ptr<route> r;
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      if (stopping_)
        return make_error(errc::connection_closed, "node is shutting down");
      auto j = routes_.find(fresh->remote_id());
      if (j != routes_.end() && j->second->current() == broken)
        r = j->second;
    }
    if (!r)
      return make_error(errc::session_lost, "the session was given up");
    failed = continue_session(*r, fresh, broken, remote_dispatched);
    if (!failed)
      return caf::none;
  }
  give_up(*broken, failed);
  return make_error(errc::session_lost, describe(failed));
}

void node_impl::give_up(peer& broken, const caf::error& reason) {
  {
    std::lock_guard<std::recursive_mutex> order{events_.order_mutex()};
    std::shared_ptr<route> lost;
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      auto j = routes_.find(broken.remote_id());
      if (j == routes_.end() || j->second->current().get() != &broken
          || broken.current_state() != peer::state::closed)
        return; // resumed, or lost already
      lost = j->second;
      routes_.erase(j);
      for (auto k = by_uri_.begin(); k != by_uri_.end();)
        k = k->second == broken.remote_id() ? by_uri_.erase(k) : std::next(k);
    }
    uint64_t unacked = 0;
    if (auto s = broken.current_session())
      unacked = s->end();
    if (unacked > 0) {
      dropped_messages += unacked;
      log(log_level::warning,
          std::to_string(unacked) + " frames sent to "
            + broken.display_name()
            + " were never acknowledged; counted as dropped messages");
    }
    ++lost_sessions;
    log(log_level::warning, "gave up the session with "
                              + broken.display_name() + ": "
                              + describe(reason));
    lose_route(*lost, broken, reason);
  }
  lookups_.wake_all();
}

void node_impl::stop_resuming() {
  std::vector<std::shared_ptr<peer>> waiting;
  std::vector<caf::actor> actors;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    for (auto& kvp : routes_)
      if (auto p = kvp.second->current();
          p && p->current_state() == peer::state::closed)
        waiting.push_back(std::move(p));
    actors.swap(resumers_);
  }
  for (auto& p : waiting)
    give_up(*p, make_error(errc::connection_closed,
                           "node '" + name_ + "' is shutting down"));
  caf::scoped_actor self{system_};
  for (auto& a : actors) {
    self->send_exit(a, caf::exit_reason::user_shutdown);
    self->wait_for(a);
  }
}

} // namespace relay
