#include "relay/node.hpp"

#include <unistd.h>

#include <chrono>
#include <future>

#include <caf/actor_registry.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "node_identity.hpp"
#include "node_impl.hpp"
#include "peer.hpp"
#include "relay/log.hpp"
#include "remote_proxy.hpp"
#include "service_actor.hpp"

namespace relay {

namespace {

std::string ms_string(caf::timespan x) {
  return std::to_string(
           std::chrono::duration_cast<std::chrono::milliseconds>(x).count())
         + " ms";
}

node_config& prepare(node_config& cfg) {
  cfg.load<caf::net::middleman>();
  return cfg;
}

std::string default_name(const node_config& cfg) {
  if (!cfg.node_name.empty())
    return cfg.node_name;
  return "node-" + std::to_string(getpid());
}

bool is_subset(const std::vector<std::string>& expected,
               const std::vector<std::string>& actual) {
  for (auto& sig : expected)
    if (std::find(actual.begin(), actual.end(), sig) == actual.end())
      return false;
  return true;
}

} // namespace

// -- node_impl: setup and teardown ---------------------------------------------

node_impl::node_impl(node_config& cfg)
  : cfg_(cfg),
    system_(prepare(cfg)),
    name_(default_name(cfg)),
    proxies_(system_, *this) {
  transport_options opts;
  opts.max_frame_body = static_cast<uint32_t>(
    std::min<size_t>(cfg.max_frame_size, UINT32_MAX));
  opts.allow_other_uids = cfg.allow_other_uids;
  opts.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
    cfg.connect_timeout);
  opts.handshake_timeout
    = std::chrono::duration_cast<std::chrono::milliseconds>(
      cfg.handshake_timeout);
  opts.secret = cfg.load_secret();
  opts.allow_insecure = cfg.tcp_insecure;
  opts.shm_ring_size = cfg.shm_ring_size;
  opts.shm_spin = cfg.shm_spin;
  register_builtin_transports(transports_, opts);
  service_actor_ = system_.spawn<caf::lazy_init + caf::hidden>(
    service_actor, [this](uint64_t serial) { check_handshake(serial); });
  lookup_actor_ = system_.spawn<caf::detached + caf::hidden>(
    [this](caf::event_based_actor*) -> caf::behavior {
      auto run = [this](const std::string& uri, const std::string& name,
                        const std::vector<std::string>& interface)
        -> caf::result<caf::actor> {
        auto ptr = lookup(uri, name, interface);
        if (!ptr)
          return std::move(ptr.error());
        return caf::actor_cast<caf::actor>(std::move(*ptr));
      };
      return {
        [run](lookup_atom, const std::string& uri, const std::string& name) {
          return run(uri, name, {});
        },
        [run](lookup_atom, const std::string& uri, const std::string& name,
              const std::vector<std::string>& interface) {
          return run(uri, name, interface);
        },
      };
    });
}

node_impl::~node_impl() {
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    stopping_ = true;
  }
  // Stop accepting (removes socket files), then close every connection.
  {
    std::lock_guard<std::mutex> guard{acceptors_mtx_};
    acceptors_.clear();
  }
  std::vector<std::shared_ptr<peer>> live;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    for (auto& kvp : live_)
      live.push_back(kvp.second);
  }
  for (auto& p : live)
    p->close(make_error(errc::connection_closed, "node '" + name_
                                                   + "' is shutting down"));
  {
    std::unique_lock<std::mutex> guard{peers_mtx_};
    peers_cv_.wait_for(guard, std::chrono::seconds{5},
                       [this] { return live_.empty(); });
  }
  {
    std::lock_guard<std::mutex> guard{names_mtx_};
    names_.clear();
  }
  proxies_.clear();
  {
    // Released outside the lock: a last reference runs the actor's cleanup,
    // which comes back to the table.
    decltype(exports_->actors) released;
    std::unique_lock<std::shared_mutex> guard{exports_->mtx};
    released.swap(exports_->actors);
  }
  caf::scoped_actor self{system_};
  for (auto* hdl : {&service_actor_, &lookup_actor_}) {
    self->send_exit(*hdl, caf::exit_reason::user_shutdown);
    self->wait_for(*hdl);
    *hdl = nullptr;
  }
}

// -- node_impl: listening and connecting -----------------------------------------

caf::expected<transport*> node_impl::find_transport(const endpoint& ep) {
  if (auto t = transports_.find(ep.scheme))
    return t;
  std::string known;
  for (auto& s : transports_.schemes())
    known += (known.empty() ? "" : ", ") + s;
  return make_error(errc::unknown_scheme, "no transport for scheme '"
                                            + ep.scheme + "' in '" + ep.text
                                            + "' (known: " + known + ")");
}

caf::expected<std::string> node_impl::listen(const std::string& uri) {
  auto ep = endpoint::parse(uri);
  if (!ep)
    return std::move(ep.error());
  auto t = find_transport(*ep);
  if (!t)
    return std::move(t.error());
  auto acc = (*t)->listen(*ep, [this](connection_ptr conn) {
    start_peer(std::move(conn), false);
  });
  if (!acc)
    return std::move(acc.error());
  auto result = (*acc)->uri();
  std::lock_guard<std::mutex> guard{acceptors_mtx_};
  acceptors_.push_back(std::move(*acc));
  return result;
}

std::shared_ptr<peer> node_impl::start_peer(connection_ptr conn,
                                            bool initiator) {
  std::shared_ptr<peer> p;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (stopping_) {
      conn->close(make_error(errc::connection_closed, "node is shutting down"));
      return nullptr;
    }
    auto serial = next_serial_++;
    p = std::make_shared<peer>(*this, std::move(conn), initiator, serial);
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
}

caf::expected<std::shared_ptr<peer>>
node_impl::await_handshake(std::shared_ptr<peer> p) {
  auto done = std::make_shared<std::promise<caf::expected<std::shared_ptr<peer>>>>();
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
  auto p = start_peer(std::move(*conn), true);
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
  if (p->remote_id() == self_id)
    return make_error(errc::handshake_failed,
                      "connection leads back to this node ('" + name_ + "')");
  std::shared_ptr<peer> loser;
  std::shared_ptr<peer> use = p;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (stopping_)
      return make_error(errc::connection_closed, "node is shutting down");
    auto& r = routes_[p->remote_id()];
    if (!r)
      r = std::make_shared<route>(p->remote_id());
    p->set_route(r);
    auto existing = r->current();
    if (!existing) {
      r->set(p);
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
        loser = existing;
        r->set(p);
      } else {
        loser = p;
        use = existing;
      }
      loser->mark_duplicate();
    }
  }
  if (loser && loser != p)
    loser->close(make_error(errc::connection_closed,
                            "superseded by another connection to the node"));
  return use;
}

void node_impl::on_peer_closed(peer& p, const caf::error& reason) {
  std::shared_ptr<route> lost;
  std::shared_ptr<peer> keep_alive;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    auto i = live_.find(p.serial());
    if (i != live_.end()) {
      keep_alive = i->second;
      live_.erase(i);
    }
    if (auto j = routes_.find(p.remote_id()); j != routes_.end()) {
      if (j->second->current().get() == &p) {
        lost = j->second;
        routes_.erase(j);
      }
    }
    for (auto k = by_uri_.begin(); k != by_uri_.end();) {
      if (lost && k->second == p.remote_id())
        k = by_uri_.erase(k);
      else
        ++k;
    }
  }
  peers_cv_.notify_all();
  {
    // Wake lookups waiting on this connection.
    std::lock_guard<std::mutex> guard{lookups_mtx_};
  }
  lookups_cv_.notify_all();
  if (lost) {
    lost->set(nullptr);
    proxies_.erase(p.remote_id());
    lost->fail_pending(make_error(errc::node_unreachable,
                                  "lost the connection to "
                                    + p.display_name() + ": "
                                    + describe(reason)));
  }
}

// -- node_impl: names and lookups --------------------------------------------------

caf::error node_impl::publish(caf::strong_actor_ptr handle, std::string name,
                              std::vector<std::string> interface) {
  if (!handle)
    return make_error(errc::invalid_argument, "cannot publish a null handle");
  if (name.empty())
    return make_error(errc::invalid_argument, "cannot publish an empty name");
  std::lock_guard<std::mutex> guard{names_mtx_};
  auto [i, added] = names_.emplace(
    std::move(name), published_actor{std::move(handle), std::move(interface)});
  if (!added)
    return make_error(errc::already_registered,
                      "name '" + i->first + "' is already published");
  return caf::none;
}

bool node_impl::unpublish(const std::string& name) {
  std::lock_guard<std::mutex> guard{names_mtx_};
  return names_.erase(name) > 0;
}

std::optional<std::pair<caf::strong_actor_ptr, std::vector<std::string>>>
node_impl::find_published(const std::string& name) const {
  std::lock_guard<std::mutex> guard{names_mtx_};
  auto i = names_.find(name);
  if (i == names_.end())
    return std::nullopt;
  return std::make_pair(i->second.handle, i->second.interface);
}

void node_impl::complete_lookup(uint64_t request_id,
                                caf::expected<lookup_result> result) {
  {
    std::lock_guard<std::mutex> guard{lookups_mtx_};
    auto i = lookups_.find(request_id);
    if (i == lookups_.end())
      return; // timed out already
    i->second.result = std::move(result);
  }
  lookups_cv_.notify_all();
}

caf::expected<caf::strong_actor_ptr>
node_impl::lookup(const std::string& uri, const std::string& name,
                  const std::vector<std::string>& interface) {
  auto deadline = std::chrono::steady_clock::now() + cfg_.lookup_timeout;
  // A connection lost to a duplicate-connection tie-break is retried once.
  for (int attempt = 0;; ++attempt) {
    auto p = connect(uri);
    if (!p)
      return std::move(p.error());
    uint64_t request_id;
    {
      std::lock_guard<std::mutex> guard{lookups_mtx_};
      request_id = next_lookup_++;
      lookups_[request_id];
    }
    auto forget = [&] {
      std::lock_guard<std::mutex> guard{lookups_mtx_};
      lookups_.erase(request_id);
    };
    if (auto err = (*p)->send_lookup(request_id, name)) {
      forget();
      if (attempt == 0)
        continue;
      return err;
    }
    caf::expected<lookup_result> result = make_error(errc::lookup_timeout, "");
    bool got = false;
    {
      std::unique_lock<std::mutex> guard{lookups_mtx_};
      got = lookups_cv_.wait_until(guard, deadline, [&] {
        return lookups_[request_id].result.has_value()
               || (*p)->current_state() == peer::state::closed;
      });
      auto& entry = lookups_[request_id];
      if (entry.result)
        result = std::move(*entry.result);
      lookups_.erase(request_id);
    }
    if (!got)
      return make_error(errc::lookup_timeout,
                        "no reply to the lookup of '" + name + "' at " + uri
                          + " within " + ms_string(cfg_.lookup_timeout));
    if (!result) {
      if (is(result.error(), errc::lookup_timeout)) {
        // The connection closed before the reply.
        if ((*p)->duplicate() && attempt == 0)
          continue;
        return make_error(errc::connection_closed,
                          "connection to " + uri
                            + " closed before the lookup of '" + name
                            + "' was answered");
      }
      return std::move(result.error());
    }
    if (!interface.empty()) {
      if (result->interface.empty())
        return make_error(errc::interface_mismatch,
                          "'" + name + "' at " + uri
                            + " is dynamically typed, expected a typed actor");
      if (!is_subset(interface, result->interface)) {
        std::string want, have;
        for (auto& s : interface)
          want += (want.empty() ? "" : "; ") + s;
        for (auto& s : result->interface)
          have += (have.empty() ? "" : "; ") + s;
        return make_error(errc::interface_mismatch,
                          "'" + name + "' at " + uri + " implements {" + have
                            + "}, expected at least {" + want + "}");
      }
    }
    return proxies_.get_or_put((*p)->remote_id(), result->aid);
  }
}

void node_impl::defer(std::function<void()> task) {
  caf::anon_send(service_actor_, deferred_task{std::move(task)});
}

void node_impl::export_actor(const caf::actor_control_block* x) {
  auto aid = x->id();
  {
    std::shared_lock<std::shared_mutex> guard{exports_->mtx};
    if (exports_->actors.count(aid) > 0)
      return;
  }
  caf::strong_actor_ptr ptr{const_cast<caf::actor_control_block*>(x)};
  {
    std::unique_lock<std::shared_mutex> guard{exports_->mtx};
    if (!exports_->actors.emplace(aid, ptr).second)
      return;
  }
  // Attaching takes x's lock, which the caller may hold. If x terminates
  // first, attach runs the functor at once.
  defer([ptr, weak = std::weak_ptr<export_table>{exports_}] {
    ptr->get()->attach_functor([aid = ptr->id(), weak](const caf::error& why) {
      caf::strong_actor_ptr released; // dropped outside the lock
      if (auto table = weak.lock()) {
        std::unique_lock<std::shared_mutex> guard{table->mtx};
        if (auto i = table->actors.find(aid); i != table->actors.end()) {
          released.swap(i->second);
          table->actors.erase(i);
        }
        if (table->exited.emplace(aid, why).second) {
          table->exit_order.push_back(aid);
          if (table->exit_order.size() > export_table::max_exited) {
            table->exited.erase(table->exit_order.front());
            table->exit_order.pop_front();
          }
        }
      }
    });
  });
}

caf::error node_impl::exit_reason_of(caf::actor_id aid) const {
  std::shared_lock<std::shared_mutex> guard{exports_->mtx};
  auto i = exports_->exited.find(aid);
  return i != exports_->exited.end() ? i->second
                                     : caf::error{caf::exit_reason::unknown};
}

caf::strong_actor_ptr node_impl::find_exported(caf::actor_id aid) const {
  std::shared_lock<std::shared_mutex> guard{exports_->mtx};
  auto i = exports_->actors.find(aid);
  return i != exports_->actors.end() ? i->second : nullptr;
}

bool node_impl::disconnect(const caf::node_id& peer_id) {
  std::shared_ptr<peer> p;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (auto i = routes_.find(peer_id); i != routes_.end())
      p = i->second->current();
  }
  if (!p)
    return false;
  p->close(make_error(errc::connection_closed, "disconnected by this node"));
  return true;
}

node_stats node_impl::stats() const {
  node_stats result;
  result.dropped_messages = dropped_messages.load();
  result.unknown_type_ids = unknown_type_ids.load();
  result.protocol_errors = protocol_errors.load();
  result.rejected_peers = rejected_peers.load() + transports_.rejected_peers();
  std::lock_guard<std::mutex> guard{peers_mtx_};
  result.connected_peers = routes_.size();
  return result;
}

// -- node_impl: proxy_registry::backend ---------------------------------------------

caf::strong_actor_ptr node_impl::make_proxy(caf::node_id nid,
                                            caf::actor_id aid) {
  std::shared_ptr<route> r;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (auto i = routes_.find(nid); i != routes_.end())
      r = i->second;
  }
  caf::actor_config cfg;
  auto result = caf::make_actor<remote_proxy, caf::strong_actor_ptr>(
    aid, nid, &system_, cfg, r);
  auto p = r ? r->current() : nullptr;
  if (p) {
    p->send_monitor(aid);
  } else {
    // No connection to that node: the proxy is dead on arrival, so that
    // monitors report it at once instead of waiting forever.
    auto proxy = static_cast<remote_proxy*>(result->get());
    proxy->kill_proxy(nullptr, caf::exit_reason::remote_link_unreachable);
  }
  return result;
}

void node_impl::set_last_hop(caf::node_id*) {
  // Relay routes directly; there is no last hop to remember.
}

// -- node ------------------------------------------------------------------------------

node::node(node_config& cfg) : impl_(std::make_unique<node_impl>(cfg)) {
  // nop
}

node::~node() = default;

caf::actor_system& node::system() noexcept {
  return impl_->system();
}

const caf::node_id& node::id() const noexcept {
  return impl_->system().node();
}

const std::string& node::name() const noexcept {
  return impl_->name();
}

caf::expected<std::string> node::listen(const std::string& uri) {
  return impl_->listen(uri);
}

bool node::unpublish(const std::string& name) {
  return impl_->unpublish(name);
}

caf::actor node::lookup_actor() const {
  return impl_->lookup_actor();
}

caf::expected<caf::node_id> node::connect(const std::string& uri) {
  auto p = impl_->connect(uri);
  if (!p)
    return std::move(p.error());
  return (*p)->remote_id();
}

node_stats node::stats() const {
  return impl_->stats();
}

bool node::disconnect(const caf::node_id& peer_id) {
  return impl_->disconnect(peer_id);
}

const message_registry& node::messages() const noexcept {
  return impl_->messages();
}

caf::error node::publish_impl(caf::strong_actor_ptr handle, std::string name,
                              std::vector<std::string> interface) {
  return impl_->publish(std::move(handle), std::move(name),
                        std::move(interface));
}

caf::expected<caf::strong_actor_ptr>
node::lookup_impl(const std::string& uri, const std::string& name,
                  std::vector<std::string> interface) {
  return impl_->lookup(uri, name, interface);
}

} // namespace relay
