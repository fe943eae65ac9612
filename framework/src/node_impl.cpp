// relay::node_impl: set-up and teardown, listening, exports, proxies.
// Connections and routes are in peer_table.cpp, lookups in
// lookup_client.cpp.

#include "node_impl.hpp"

#include <unistd.h>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "heartbeat.hpp"
#include "metrics.hpp"
#include "node_identity.hpp"
#include "peer.hpp"
#include "protocols.hpp"
#include "relay/log.hpp"
#include "remote_proxy.hpp"
#include "service_actor.hpp"

namespace relay {

namespace {

node_config& prepare(node_config& cfg) {
  cfg.load<caf::net::middleman>();
  // An idle peer sends one heartbeat per interval; a timeout of two
  // intervals or more leaves room for one late tick.
  if (cfg.heartbeat_interval <= caf::timespan{0}
      || cfg.heartbeat_timeout < 2 * cfg.heartbeat_interval)
    throw config_error("relay.heartbeat-interval must be positive and "
                       "relay.heartbeat-timeout at least twice as long");
  if (cfg.max_queued_bytes == 0 || cfg.max_inbound_bytes == 0)
    throw config_error("relay.max-queued-bytes and relay.max-inbound-bytes "
                       "must be positive");
  return cfg;
}

std::string default_name(const node_config& cfg) {
  if (!cfg.node_name.empty())
    return cfg.node_name;
  return "node-" + std::to_string(getpid());
}

} // namespace

node_module::~node_module() = default;

void node_module::configure(node_config&) {
  // nop
}

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
  opts.settings = &caf::content(cfg);
  register_builtin_transports(transports_, opts);
  for (auto add : {add_message_protocol, add_monitor_protocol,
                   add_lookup_protocol, add_heartbeat_protocol,
                   add_retire_protocol, add_session_protocol})
    if (auto err = add(frames_))
      throw config_error(describe(err));
  service_actor_ = system_.spawn<caf::lazy_init + caf::hidden>(
    service_actor, [this](uint64_t serial) { check_handshake(serial); });
  heartbeat_actor_ = system_.spawn<caf::hidden>(
    heartbeat_actor, cfg.heartbeat_interval, cfg.heartbeat_timeout, [this] {
      std::vector<heartbeat_probe> result;
      for (auto& p : established_peers()) {
        // A broken connection waiting to resume has its own deadline.
        if (p->current_state() == peer::state::closed)
          continue;
        p->send_ack_if_due();
        std::weak_ptr<peer> weak = p;
        heartbeat_probe probe;
        probe.key = p->serial();
        // Bytes, not frames, tell that the peer is alive: a large frame
        // may take longer than the timeout to arrive.
        auto t = p->traffic();
        probe.received = t.bytes_in;
        // Paused by us (back-pressure): its silence is ours, not its own.
        probe.paused = p->inbound_paused();
        probe.sent = t.frames_out;
        probe.send_heartbeat = [weak] {
          if (auto p = weak.lock()) {
            auto buf = begin_frame(0);
            finish_frame(buf, frame_kind::heartbeat);
            p->send_frame(std::move(buf));
          }
        };
        probe.send_probe = [weak] {
          auto p = weak.lock();
          return p && p->send_probe();
        };
        probe.close_silent = [weak, this] {
          // Not one that broke meanwhile: its session has its own deadline.
          if (auto p = weak.lock();
              p && p->current_state() == peer::state::established)
            p->close(make_error(
              errc::heartbeat_timeout,
              "heartbeat timeout: nothing arrived from " + p->display_name()
                + " for "
                + std::to_string(std::chrono::duration_cast<
                                   std::chrono::milliseconds>(
                                   cfg_.heartbeat_timeout)
                                   .count())
                + " ms (relay.heartbeat-timeout)"));
        };
        result.push_back(std::move(probe));
      }
      return result;
    });
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
  start_remote_spawn();
  start_introspection();
}

node_impl::~node_impl() {
  stop_introspection();
  stop_remote_spawn();
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    stopping_ = true;
  }
  // Stop accepting (removes socket files), then close every connection.
  {
    std::lock_guard<std::mutex> guard{acceptors_mtx_};
    acceptors_.clear();
  }
  close_all_peers();
  stop_resuming();
  names_->clear();
  proxies_.clear();
  exports_->clear();
  caf::scoped_actor self{system_};
  for (auto* hdl : {&heartbeat_actor_, &service_actor_, &lookup_actor_}) {
    self->send_exit(*hdl, caf::exit_reason::user_shutdown);
    self->wait_for(*hdl);
    *hdl = nullptr;
  }
}

void node_impl::start_modules(node& owner) {
  for (auto& m : cfg_.modules()) {
    try {
      m->start(owner);
    } catch (...) {
      stop_modules(owner);
      throw;
    }
    started_modules_.push_back(m);
  }
  std::lock_guard<std::mutex> guard{peers_mtx_};
  frames_frozen_ = true;
}

void node_impl::stop_modules(node& owner) {
  while (!started_modules_.empty()) {
    auto m = std::move(started_modules_.back());
    started_modules_.pop_back();
    m->stop(owner);
  }
}

caf::error node_impl::add_frame_handler(uint8_t kind, std::string name,
                                        frame_handler handler) {
  if (kind < first_module_frame_kind)
    return make_error(errc::invalid_argument,
                      "frame kind " + std::to_string(kind)
                        + " is reserved for the framework (modules use "
                        + std::to_string(first_module_frame_kind)
                        + " to 255)");
  {
    // The table is read without a lock: it must not change once a
    // connection exists.
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (frames_frozen_ || !live_.empty())
      return make_error(errc::invalid_argument,
                        "frame handlers can only be added while the node "
                        "starts (node_module::start), before it connects");
  }
  return frames_.add(kind, std::move(name), std::move(handler));
}

// -- listening ------------------------------------------------------------------

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

caf::expected<std::string> node_impl::listen(const std::string& uri,
                                             trust_level trust) {
  auto ep = endpoint::parse(uri);
  if (!ep)
    return std::move(ep.error());
  auto t = find_transport(*ep);
  if (!t)
    return std::move(t.error());
  auto acc = (*t)->listen(*ep, [this, scheme = ep->scheme,
                                trust](connection_ptr conn) {
    start_peer(std::move(conn), false, std::string{}, scheme, trust);
  });
  if (!acc)
    return std::move(acc.error());
  auto result = (*acc)->uri();
  std::lock_guard<std::mutex> guard{acceptors_mtx_};
  acceptors_.push_back(std::move(*acc));
  return result;
}

// -- services -----------------------------------------------------------------------

void node_impl::defer(std::function<void()> task) {
  caf::anon_send(service_actor_, deferred_task{std::move(task)});
}

void node_impl::export_actor(const caf::actor_control_block* x) {
  if (!exports_->insert(x))
    return;
  // Attaching takes x's lock, which the caller may hold.
  caf::strong_actor_ptr ptr{const_cast<caf::actor_control_block*>(x)};
  defer([ptr, weak = std::weak_ptr<export_table>{exports_}] {
    if (auto table = weak.lock())
      table->watch(ptr);
  });
}

node_stats node_impl::stats() const {
  node_stats result;
  result.dropped_messages = dropped_messages.load();
  result.unknown_type_ids = unknown_type_ids.load();
  result.protocol_errors = protocol_errors.load();
  result.overload_drops = overload_drops.load();
  result.overload_rejections = overload_rejections.load();
  result.inbound_pauses = inbound_pauses.load();
  result.untrusted_drops = untrusted_drops.load();
  result.resumed_sessions = resumed_sessions.load();
  result.lost_sessions = lost_sessions.load();
  result.rejected_peers = rejected_peers.load() + transports_.rejected_peers();
  std::lock_guard<std::mutex> guard{peers_mtx_};
  result.connected_peers = routes_.size();
  return result;
}

// -- proxy_registry::backend ---------------------------------------------------------

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
    aid, nid, &system_, cfg, r, this);
  auto p = r ? r->current() : nullptr;
  if (p) {
    p->send_monitor(aid);
    return result;
  }
  // No connection to that node: the proxy is dead on arrival, so that
  // monitors report it at once instead of waiting forever, and the registry
  // lets go of it soon (we run under its lock here), so that references to
  // unreachable nodes cost no memory once their holders drop them.
  auto proxy = static_cast<remote_proxy*>(result->get());
  proxy->kill_proxy(nullptr, caf::exit_reason::remote_link_unreachable);
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (!sweeps_.insert(nid).second)
      return result; // a sweep of that node is pending already
  }
  defer([this, nid] {
    bool connected;
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      sweeps_.erase(nid);
      connected = routes_.count(nid) > 0;
    }
    if (!connected)
      proxies_.erase(nid);
  });
  return result;
}

void node_impl::set_last_hop(caf::node_id*) {
  // Relay routes directly; there is no last hop to remember.
}

} // namespace relay
