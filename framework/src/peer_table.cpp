// relay::node_impl: connections and routes. Starting peers, the handshake
// bound, connecting, choosing one connection per node, losing nodes, and the
// node events that follow from those.

#include <chrono>
#include <future>

#include <caf/send.hpp>

#include "node_impl.hpp"
#include "peer.hpp"
#include "protocols.hpp"
#include "relay/log.hpp"
#include "service_actor.hpp"
#include "session.hpp"

namespace relay {

namespace {

std::string ms_string(caf::timespan x) {
  return std::to_string(
           std::chrono::duration_cast<std::chrono::milliseconds>(x).count())
         + " ms";
}

} // namespace

std::shared_ptr<peer> node_impl::start_peer(connection_ptr conn,
                                            bool initiator, std::string uri,
                                            std::string scheme,
                                            trust_level trust,
                                            std::shared_ptr<peer> resumes) {
  std::shared_ptr<peer> p;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (stopping_) {
      conn->close(make_error(errc::connection_closed, "node is shutting down"));
      return nullptr;
    }
    auto serial = next_serial_++;
    p = std::make_shared<peer>(*this, std::move(conn), initiator, serial,
                               std::move(uri), std::move(scheme), trust);
    if (resumes)
      p->resume_of(std::move(resumes));
    live_.emplace(serial, p);
  }
  caf::anon_send(service_actor_, arm_atom::value, p->serial(),
                 cfg_.handshake_timeout);
  p->start();
  return p;
}

void node_impl::check_handshake(uint64_t serial) {
  std::shared_ptr<peer> p;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    auto i = live_.find(serial);
    if (i == live_.end())
      return;
    p = i->second;
  }
  if (p->current_state() == peer::state::handshaking)
    p->close(make_error(errc::handshake_timeout,
                        p->display_name()
                          + " did not complete the handshake within "
                          + ms_string(cfg_.handshake_timeout)));
  else if (p->retire_overdue(cfg_.handshake_timeout))
    p->close(make_error(errc::connection_closed,
                        "duplicate connection to " + p->display_name()
                          + " not retired by the peer within "
                          + ms_string(cfg_.handshake_timeout)),
             true);
}

caf::expected<std::shared_ptr<peer>>
node_impl::await_handshake(std::shared_ptr<peer> p) {
  using result_type = caf::expected<std::shared_ptr<peer>>;
  auto done = std::make_shared<std::promise<result_type>>();
  auto result = done->get_future();
  p->on_ready([done](const caf::error& err, std::shared_ptr<peer> use) {
    if (err)
      done->set_value(err);
    else
      done->set_value(std::move(use));
  });
  // The handshake timer closes the peer in time; this bound only guards
  // against a timer that cannot run (e.g. a stalled scheduler).
  auto bound = cfg_.handshake_timeout * 2 + std::chrono::seconds{1};
  if (result.wait_for(bound) != std::future_status::ready) {
    p->close(make_error(errc::handshake_timeout, "handshake timed out"));
    return make_error(errc::handshake_timeout,
                      p->display_name() + " did not complete the handshake");
  }
  return result.get();
}

caf::expected<std::shared_ptr<peer>>
node_impl::connect(const std::string& uri) {
  auto ep = endpoint::parse(uri);
  if (!ep)
    return std::move(ep.error());
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (stopping_)
      return make_error(errc::connection_closed, "node is shutting down");
    if (auto i = by_uri_.find(uri); i != by_uri_.end())
      if (auto j = routes_.find(i->second); j != routes_.end())
        if (auto p = j->second->current())
          return p;
  }
  auto t = find_transport(*ep);
  if (!t)
    return std::move(t.error());
  auto conn = (*t)->connect(*ep);
  if (!conn)
    return std::move(conn.error());
  auto p = start_peer(std::move(*conn), true, uri, ep->scheme);
  if (!p)
    return make_error(errc::connection_closed, "node is shutting down");
  auto use = await_handshake(p);
  if (!use)
    return use;
  std::lock_guard<std::mutex> guard{peers_mtx_};
  by_uri_[uri] = (*use)->remote_id();
  return use;
}

caf::expected<std::shared_ptr<peer>>
node_impl::on_handshake(std::shared_ptr<peer> p) {
  const auto& self_id = system_.node();
  const auto& nid = p->remote_id();
  if (nid == self_id)
    return make_error(errc::handshake_failed,
                      "connection leads back to this node ('" + name_ + "')");
  {
    // A fresh (not resuming) connection from a node whose session waits
    // for a resume here: the node gave the session up on its side (its
    // window ended first), so this side gives it up too before the new
    // connection serves the node.
    std::shared_ptr<peer> stale;
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      if (auto j = routes_.find(nid); j != routes_.end())
        if (auto c = j->second->current();
            c && c->current_state() == peer::state::closed)
          stale = std::move(c);
    }
    if (stale)
      give_up(*stale, make_error(errc::session_lost,
                                 p->display_name()
                                   + " connected afresh: it gave the "
                                     "broken connection's session up"));
  }
  {
    // Handles of this node that arrived while it was unreachable are dead;
    // drop them so that lookups from now on yield working ones.
    bool known;
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      known = routes_.count(nid) > 0;
    }
    if (!known)
      proxies_.erase(nid);
  }
  std::shared_ptr<peer> loser;
  std::shared_ptr<peer> use = p;
  bool is_new = false;
  std::lock_guard<std::recursive_mutex> order{events_.order_mutex()};
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (stopping_)
      return make_error(errc::connection_closed, "node is shutting down");
    auto& r = routes_[nid];
    if (!r)
      r = std::make_shared<route>(nid);
    p->set_route(r);
    auto existing = r->current();
    if (!existing) {
      r->set(p);
      is_new = true;
    } else {
      // Two connections to one node (both connected at once): both sides
      // keep the one whose initiator has the smaller (node id, serial).
      auto key = [&](const peer& x) {
        return std::make_pair(x.initiator() ? self_id : x.remote_id(),
                              x.initiator_serial());
      };
      auto kp = key(*p);
      auto ke = key(*existing);
      bool new_wins = kp.first < ke.first
                      || (kp.first == ke.first && kp.second < ke.second);
      if (new_wins) {
        // The existing connection keeps serving until it hands over (see
        // retire.cpp), so that nothing sent later overtakes it.
        loser = existing;
      } else {
        loser = p;
        use = existing;
      }
    }
  }
  if (is_new)
    events_.node_up_locked(p->info(), p->hidden());
  if (loser) {
    // Both sides pick the same winner; each retires the loser, which closes
    // once both did, losing and reordering nothing. A remote that never
    // retires it is closed at the handshake bound (check_handshake).
    loser->retire(use);
    caf::anon_send(service_actor_, arm_atom::value, loser->serial(),
                   cfg_.handshake_timeout);
  }
  return use;
}

void node_impl::on_peer_closed(peer& p, const caf::error& reason,
                               bool may_resume) {
  std::shared_ptr<route> lost;
  std::shared_ptr<peer> keep_alive;
  std::shared_ptr<peer> suspended;
  {
    // Held until node_down is out, so that a reconnect's node_up follows it.
    std::lock_guard<std::recursive_mutex> order{events_.order_mutex()};
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      auto i = live_.find(p.serial());
      if (i != live_.end()) {
        keep_alive = i->second;
        live_.erase(i);
        ++closing_; // until node_down is out (close_all_peers waits)
      }
      if (auto j = routes_.find(p.remote_id()); j != routes_.end()) {
        if (j->second->current().get() == &p) {
          if (may_resume && !stopping_ && keep_alive) {
            // The route stays, served by this peer's session, which keeps
            // what is sent until a resume or the deadline.
            suspended = keep_alive;
          } else {
            lost = j->second;
            routes_.erase(j);
          }
        }
      }
      if (lost)
        for (auto k = by_uri_.begin(); k != by_uri_.end();)
          k = k->second == p.remote_id() ? by_uri_.erase(k) : std::next(k);
    }
    if (suspended) {
      suspended->current_session()->suspend();
      begin_resume(suspended, reason);
    } else if (lost) {
      lose_route(*lost, p, reason);
    }
  }
  if (!suspended)
    if (auto s = p.current_session())
      if (auto unsent = s->end_final(); unsent > 0) {
        dropped_messages += unsent;
        log(log_level::warning,
            std::to_string(unsent) + " frames for " + p.display_name()
              + " were refused by the closing connection; counted as "
                "dropped messages");
      }
  lookups_.wake_all();
  // Notified under the lock: once closing_ drops, ~node_impl may go on and
  // destroy peers_cv_ as soon as the lock is free (TSan saw the broadcast
  // race the destructor's pthread_cond_destroy).
  std::lock_guard<std::mutex> guard{peers_mtx_};
  if (keep_alive)
    --closing_;
  peers_cv_.notify_all();
}

void node_impl::lose_route(route& r, peer& p, const caf::error& reason) {
  // Proxies report DOWN and requests fail before node_down goes out.
  r.set(nullptr);
  proxies_.erase(p.remote_id());
  r.fail_pending(make_error(errc::node_unreachable,
                            "lost the connection to " + p.display_name() + ": "
                              + describe(reason)));
  stop_reporting_downs(*this, r);
  events_.node_down_locked(p.remote_id(), reason, p.hidden());
}

bool node_impl::wait_for_open_connections(size_t n,
                                          std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard{peers_mtx_};
  return peers_cv_.wait_for(guard, timeout, [&] { return live_.size() == n; });
}

std::vector<std::shared_ptr<peer>> node_impl::established_peers() const {
  std::vector<std::shared_ptr<peer>> result;
  std::lock_guard<std::mutex> guard{peers_mtx_};
  result.reserve(routes_.size());
  for (auto& kvp : routes_)
    if (auto p = kvp.second->current())
      result.push_back(std::move(p));
  return result;
}

std::vector<peer_info> node_impl::peers() const {
  std::vector<peer_info> result;
  for (auto& p : established_peers())
    result.push_back(p->info());
  return result;
}

void node_impl::monitor_node(const caf::actor& observer,
                             const caf::node_id& node) {
  if (!observer)
    return;
  std::lock_guard<std::recursive_mutex> order{events_.order_mutex()};
  bool connected;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    connected = routes_.count(node) > 0;
  }
  if (connected)
    events_.monitor_node_locked(observer, node);
  else
    caf::anon_send(observer,
                   node_down_msg{node, make_error(errc::node_unreachable,
                                                  "node "
                                                    + caf::to_string(node)
                                                    + " is not connected")});
}

caf::error node_impl::send_frame(const caf::node_id& id, frame_buffer frame) {
  if (frame.size() < frame_header::size
      || static_cast<uint8_t>(frame_header::read(frame.data()).kind)
           < first_module_frame_kind)
    return make_error(errc::invalid_argument,
                      "node::send_frame sends module frame kinds ("
                        + std::to_string(first_module_frame_kind)
                        + " to 255) built with begin_frame/finish_frame");
  std::shared_ptr<peer> p;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (auto i = routes_.find(id); i != routes_.end())
      p = i->second->current();
  }
  if (!p)
    return make_error(errc::node_unreachable,
                      "node " + caf::to_string(id) + " is not connected");
  return p->send_frame(std::move(frame));
}

bool node_impl::disconnect(const caf::node_id& peer_id, caf::error reason) {
  std::shared_ptr<peer> p;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (auto i = routes_.find(peer_id); i != routes_.end())
      p = i->second->current();
  }
  if (!p)
    return false;
  // What the node's actors sent before goes out first (bounded).
  p->close(reason, true);
  return true;
}

void node_impl::close_all_peers() {
  std::vector<std::shared_ptr<peer>> live;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    for (auto& kvp : live_)
      live.push_back(kvp.second);
  }
  for (auto& p : live)
    p->close(make_error(errc::connection_closed,
                        "node '" + name_ + "' is shutting down"),
             true);
  std::unique_lock<std::mutex> guard{peers_mtx_};
  // The transports bound each flush; this bound only guards against one
  // that does not.
  // Also until every node_down is out: a listener may still use the node.
  peers_cv_.wait_for(guard, std::chrono::seconds{10},
                     [this] { return live_.empty() && closing_ == 0; });
}

} // namespace relay
