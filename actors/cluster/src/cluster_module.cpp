#include "relay/cluster.hpp"

#include <mutex>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "cluster_actor.hpp"
#include "cluster_introspection.hpp"
#include "registry_actor.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"

namespace relay {

using namespace cluster_detail;

namespace {

// Bound on the blocking calls that only talk to the local actor.
constexpr auto local_call_timeout = std::chrono::seconds{1};

// Bound on waiting for dials and lookups in flight when the module stops
// (a dial is bounded by relay.connect-timeout and the handshake timeout).
constexpr auto helper_wait = std::chrono::milliseconds{15000};

// Posts node events to the cluster actor.
class event_forwarder : public node_listener {
public:
  explicit event_forwarder(caf::actor target) : target_(std::move(target)) {
    // nop
  }

  void on_node_up(const peer_info& info) override {
    caf::anon_send(target_, peer_up{info.node});
  }

  void on_node_down(const caf::node_id& node, const caf::error&) override {
    caf::anon_send(target_, peer_down{node});
  }

private:
  caf::actor target_;
};

template <class T>
T read_option(const caf::actor_system_config& cfg, const char* name,
              T fallback) {
  return caf::get_or(cfg, name, fallback);
}

clock::duration read_duration(const caf::actor_system_config& cfg,
                              const char* name, clock::duration fallback) {
  auto x = caf::get_or(cfg, name, caf::timespan{fallback});
  return std::chrono::duration_cast<clock::duration>(x);
}

} // namespace

struct cluster_module::impl {
  node* n = nullptr;
  settings cfg;
  caf::actor actor;
  caf::actor registry;
  /// Answers relayctl (cluster_introspection.cpp).
  caf::actor inspector;
  std::shared_ptr<event_forwarder> forwarder;
  std::shared_ptr<helper_gate> gate;
  std::shared_ptr<etcd_session> etcd; // the etcd backend, if chosen
  std::string address;
  std::string listen_address;
  mutable std::mutex mtx; // guards actor and address after start
};

cluster_module::cluster_module() : impl_(std::make_shared<impl>()) {
  // nop
}

cluster_module::~cluster_module() = default;

std::string cluster_module::name() const {
  return "cluster";
}

void cluster_module::configure(node_config& cfg) {
  add_registry_types(cfg);
  cfg.module_options("relay.cluster")
    .add<std::string>("name", "cluster name; other clusters are refused")
    .add<std::vector<std::string>>("seeds", "addresses to join through")
    .add<std::string>("listen", "where members connect (tcp URI)")
    .add<std::string>("advertise", "address members dial, if not listen's")
    .add<caf::timespan>("heartbeat-interval", "heartbeats to each member")
    .add<double>("phi-threshold", "suspect a member at this phi")
    .add<caf::timespan>("acceptable-heartbeat-pause",
                        "silence tolerated on top of the mean interval")
    .add<caf::timespan>("min-std-deviation", "floor of the deviation")
    .add<caf::timespan>("down-after",
                        "unreachable this long: declared down")
    .add<caf::timespan>("retry-interval", "between join attempts")
    .add<caf::timespan>("seed-timeout",
                        "first seed forms a cluster after this")
    .add<caf::timespan>("gossip-interval", "anti-entropy gossip period")
    .add<bool>("leave-on-stop", "leave gracefully when the node stops")
    .add<std::string>("backend", "\"embedded\" (default) or \"etcd\"")
    .add<std::vector<std::string>>("etcd.endpoints",
                                   "etcd client URLs (http://host:port)")
    .add<std::string>("etcd.prefix", "etcd key prefix (default /relay/)")
    .add<caf::timespan>("etcd.lease-ttl",
                        "a node silent towards etcd this long is down")
    .add<caf::timespan>("etcd.timeout", "bound on each request to etcd");
}

void cluster_module::start(node& n) {
  auto& sys_cfg = n.system().config();
  settings s;
  s.cluster = read_option<std::string>(sys_cfg, "relay.cluster.name", s.cluster);
  if (auto seeds = caf::get_if<std::vector<std::string>>(
        &sys_cfg, "relay.cluster.seeds"))
    s.seeds = *seeds;
  s.listen = read_option<std::string>(sys_cfg, "relay.cluster.listen", s.listen);
  s.advertise = read_option<std::string>(sys_cfg, "relay.cluster.advertise",
                                         s.advertise);
  s.heartbeat_interval = read_duration(
    sys_cfg, "relay.cluster.heartbeat-interval", s.heartbeat_interval);
  s.detector.threshold = read_option<double>(
    sys_cfg, "relay.cluster.phi-threshold", s.detector.threshold);
  s.detector.acceptable_pause = read_duration(
    sys_cfg, "relay.cluster.acceptable-heartbeat-pause",
    s.detector.acceptable_pause);
  s.detector.min_std_deviation = read_duration(
    sys_cfg, "relay.cluster.min-std-deviation", s.detector.min_std_deviation);
  s.detector.first_heartbeat_estimate = s.heartbeat_interval;
  s.down_after = read_duration(sys_cfg, "relay.cluster.down-after",
                               s.down_after);
  s.retry_interval = read_duration(sys_cfg, "relay.cluster.retry-interval",
                                   s.retry_interval);
  s.seed_timeout = read_duration(sys_cfg, "relay.cluster.seed-timeout",
                                 s.seed_timeout);
  s.gossip_interval = read_duration(sys_cfg, "relay.cluster.gossip-interval",
                                    s.gossip_interval);
  s.leave_on_stop = read_option<bool>(sys_cfg, "relay.cluster.leave-on-stop",
                                      s.leave_on_stop);
  s.backend = read_option<std::string>(sys_cfg, "relay.cluster.backend",
                                      s.backend);
  if (auto eps = caf::get_if<std::vector<std::string>>(
        &sys_cfg, "relay.cluster.etcd.endpoints"))
    s.etcd.endpoints = *eps;
  s.etcd.prefix = read_option<std::string>(sys_cfg, "relay.cluster.etcd.prefix",
                                           s.etcd.prefix);
  s.etcd.lease_ttl = std::chrono::duration_cast<std::chrono::seconds>(
    read_duration(sys_cfg, "relay.cluster.etcd.lease-ttl", s.etcd.lease_ttl));
  // A keep-alive that times out must leave time for another before the
  // lease expires: the timeout defaults to, and may not exceed, ttl / 3.
  auto max_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
    s.etcd.lease_ttl) / 3;
  s.etcd.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
    read_duration(sys_cfg, "relay.cluster.etcd.timeout",
                  std::min(s.etcd.timeout, max_timeout)));
  if (s.backend != "embedded" && s.backend != "etcd")
    throw config_error("relay.cluster.backend is \"embedded\" or \"etcd\", "
                       "not \"" + s.backend + "\"");
  if (s.backend == "etcd") {
    if (s.etcd.endpoints.empty())
      throw config_error("relay.cluster.backend = \"etcd\" needs "
                         "relay.cluster.etcd.endpoints");
    for (auto& ep : s.etcd.endpoints)
      if (ep.rfind("http://", 0) != 0)
        throw config_error("relay.cluster.etcd.endpoints: '" + ep
                           + "' is not an http://host:port URL");
    if (s.etcd.lease_ttl.count() < 1 || s.etcd.timeout.count() <= 0
        || s.etcd.timeout > max_timeout)
      throw config_error("relay.cluster.etcd: lease-ttl must be at least "
                         "1 s, and timeout positive and at most a third of "
                         "it");
    // The name is part of every key: keep it from reaching into another
    // cluster's keys ("a" and "a/members").
    if (s.cluster.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        != std::string::npos)
      throw config_error("relay.cluster.name '" + s.cluster
                         + "': with the etcd backend, only letters, digits, "
                           "'.', '_' and '-'");
    if (s.etcd.prefix.empty() || s.etcd.prefix.back() != '/')
      throw config_error("relay.cluster.etcd.prefix must end with '/'");
    if (!s.seeds.empty())
      log(log_level::warning, "cluster: relay.cluster.seeds is ignored with "
                              "the etcd backend (etcd is the seed)");
  }
  auto positive = [](clock::duration d) { return d.count() > 0; };
  if (s.cluster.empty() || s.cluster.size() > limits::max_name_size)
    throw config_error("relay.cluster.name must have 1 to 256 bytes");
  if (!positive(s.heartbeat_interval) || !positive(s.down_after)
      || !positive(s.retry_interval) || !positive(s.gossip_interval)
      || s.detector.threshold <= 0)
    throw config_error("relay.cluster: heartbeat-interval, down-after, "
                       "retry-interval, gossip-interval and phi-threshold "
                       "must be positive");
  // Checks the detector's settings (throws invalid_argument).
  try {
    phi_accrual_detector check{s.detector};
  } catch (std::exception& ex) {
    throw config_error(std::string{"relay.cluster: "} + ex.what());
  }
  auto bound = n.listen(s.listen);
  if (!bound)
    throw config_error("relay.cluster.listen: cannot listen on " + s.listen
                       + ": " + describe(bound.error()));
  if (s.advertise.empty())
    s.advertise = *bound;
  member_info self;
  self.node = n.id();
  self.name = n.name();
  self.address = s.advertise;
  auto detectors = std::make_shared<detector_table>(s.detector);
  auto gate = std::make_shared<helper_gate>();
  std::shared_ptr<etcd_session> etcd;
  if (s.backend == "etcd")
    etcd = std::make_shared<etcd_session>(s.etcd, s.cluster, self);
  auto actor = n.system().spawn(cluster_actor, &n, s, self, detectors, gate,
                                etcd);
  caf::actor registry;
  caf::actor inspector;
  std::shared_ptr<event_forwarder> forwarder;
  // If anything below throws, the node never calls stop(): undo here.
  auto undo = [&] {
    if (forwarder)
      n.remove_listener(forwarder);
    gate->close_and_wait(helper_wait);
    caf::scoped_actor waiter{n.system()};
    for (auto& a : {inspector, actor, registry})
      if (a) {
        waiter->send_exit(a, caf::exit_reason::user_shutdown);
        waiter->wait_for(a);
      }
    if (etcd)
      etcd->stop();
  };
  try {
  auto k = [](cluster_frame x) { return static_cast<uint8_t>(x); };
  auto check = [&n](caf::error err) {
    if (err)
      throw config_error("cluster module: " + describe(err));
  };
  check(n.add_frame_handler(
    k(cluster_frame::join), "cluster join",
    [actor](peer_context& from, wire_reader& in) {
      auto req = read_join_request(in);
      caf::anon_send(actor, frame_join{from.remote_id(), std::move(req)});
    }));
  check(n.add_frame_handler(
    k(cluster_frame::join_reply), "cluster join reply",
    [actor](peer_context& from, wire_reader& in) {
      auto reply = read_join_reply(in);
      caf::anon_send(actor, frame_join_reply{from.remote_id(),
                                             std::move(reply)});
    }));
  check(n.add_frame_handler(
    k(cluster_frame::gossip), "cluster gossip",
    [actor](peer_context& from, wire_reader& in) {
      auto g = read_gossip(in);
      caf::anon_send(actor,
                     frame_gossip{from.remote_id(), std::move(g), false});
    }));
  check(n.add_frame_handler(
    k(cluster_frame::gossip_reply), "cluster gossip reply",
    [actor](peer_context& from, wire_reader& in) {
      auto g = read_gossip(in);
      caf::anon_send(actor,
                     frame_gossip{from.remote_id(), std::move(g), true});
    }));
  check(n.add_frame_handler(
    k(cluster_frame::heartbeat), "cluster heartbeat",
    [detectors](peer_context& from, wire_reader& in) {
      // Recorded here, on the I/O thread: no message per heartbeat, and the
      // actor's own delay under load does not count as the peer's silence.
      if (in.remaining() != 0)
        throw wire_error("cluster heartbeat with a body");
      detectors->heartbeat(from.remote_id(), clock::now());
    }));
  forwarder = std::make_shared<event_forwarder>(actor);
  n.add_listener(forwarder);
  registry = n.system().spawn(registry_actor, &n, actor, gate, etcd);
  check(n.publish(registry, registry_name));
  inspector = spawn_cluster_inspector(n, *this);
  } catch (...) {
    undo();
    throw;
  }
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->n = &n;
    impl_->cfg = s;
    impl_->gate = gate;
    impl_->etcd = etcd;
    impl_->actor = actor;
    impl_->registry = registry;
    impl_->inspector = inspector;
    impl_->forwarder = forwarder;
    impl_->address = s.advertise;
    impl_->listen_address = *bound;
  }
  log(log_level::info, "cluster: node '" + n.name() + "' of cluster '"
                         + s.cluster + "' at " + s.advertise + " ("
                         + s.backend + " backend)");
  if (etcd) {
    join({}); // etcd is the seed: joining starts at once
  } else if (!s.seeds.empty())
    if (auto err = join(s.seeds)) {
      stop(n);
      throw config_error("relay.cluster.seeds: " + describe(err));
    }
}

void cluster_module::stop(node& n) {
  caf::actor actor;
  caf::actor registry;
  caf::actor inspector;
  std::shared_ptr<helper_gate> gate;
  std::shared_ptr<etcd_session> etcd;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    actor = impl_->actor;
    registry = impl_->registry;
    inspector = impl_->inspector;
    gate = impl_->gate;
    etcd = impl_->etcd;
  }
  if (!actor)
    return;
  if (impl_->cfg.leave_on_stop)
    leave();
  n.remove_listener(impl_->forwarder);
  // No helper thread may use the node after this returns, and neither may
  // the actors: wait for all of them (the node is destroyed next).
  if (!gate->close_and_wait(helper_wait))
    log(log_level::warning, "cluster: a dial or lookup still runs after "
                            "waiting for it; the node stops anyway");
  {
    caf::scoped_actor waiter{n.system()};
    // The inspector first: it calls the other two.
    for (auto& a : {inspector, actor, registry}) {
      waiter->send_exit(a, caf::exit_reason::user_shutdown);
      waiter->wait_for(a);
    }
  }
  // Without leave-on-stop the lease is not revoked: the others see this
  // node down when it expires, as after a crash.
  if (etcd)
    etcd->stop();
  std::lock_guard<std::mutex> guard{impl_->mtx};
  impl_->etcd = nullptr;
  impl_->registry = nullptr;
  impl_->inspector = nullptr;
  impl_->actor = nullptr;
  impl_->n = nullptr;
}

caf::error cluster_module::join(std::vector<std::string> seeds) {
  auto a = actor();
  if (!a)
    return make_error(errc::invalid_argument,
                      "the cluster module has not started (create the node "
                      "first)");
  bool etcd;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    etcd = impl_->etcd != nullptr;
  }
  if (seeds.empty() && !etcd) // (etcd is the seed)
    return make_error(errc::invalid_argument, "join needs at least one seed");
  caf::scoped_actor self{a->home_system()};
  caf::error result;
  self->request(a, local_call_timeout, join_atom::value, std::move(seeds))
    .receive([] {}, [&](caf::error& err) { result = std::move(err); });
  return result;
}

caf::error cluster_module::wait_up(caf::timespan timeout) {
  auto a = actor();
  if (!a)
    return make_error(errc::invalid_argument,
                      "the cluster module has not started");
  caf::scoped_actor self{a->home_system()};
  caf::error result;
  bool timed_out = false;
  self->request(a, timeout, wait_up_atom::value)
    .receive([] {},
             [&](caf::error& err) {
               if (err == caf::sec::request_timeout)
                 timed_out = true;
               else
                 result = std::move(err);
             });
  if (!timed_out)
    return result;
  // Say what held it up, if the actor knows (etcd unreachable, say).
  std::string why;
  self->request(a, local_call_timeout, why_atom::value)
    .receive([&](std::string& x) { why = std::move(x); }, [](caf::error&) {});
  return make_error(errc::connect_timeout,
                    "this node did not become a member within the timeout"
                      + (why.empty() ? std::string{} : " (" + why + ")"));
}

void cluster_module::leave() {
  auto a = actor();
  if (!a)
    return;
  caf::scoped_actor self{a->home_system()};
  // The actor answers once the leader removed this node (at most 2 s).
  self->request(a, std::chrono::seconds{3}, leave_atom::value)
    .receive([] {}, [](caf::error&) {});
}

std::vector<member_info> cluster_module::members() const {
  std::vector<member_info> result;
  auto a = actor();
  if (!a)
    return result;
  caf::scoped_actor self{a->home_system()};
  self->request(a, local_call_timeout, members_atom::value)
    .receive([&](std::vector<member_info>& xs) { result = std::move(xs); },
             [](caf::error&) {});
  return result;
}

void cluster_module::monitor_cluster(const caf::actor& observer) {
  if (auto a = actor())
    caf::anon_send(a, monitor_atom::value, observer);
}

void cluster_module::demonitor_cluster(const caf::actor& observer) {
  if (auto a = actor())
    caf::anon_send(a, demonitor_atom::value, observer);
}

std::string cluster_module::address() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->address;
}

namespace {

// A blocking request to `dest` bounded by `timeout`; `f` gets the answer.
template <class F, class... Ts>
caf::error call(const caf::actor& dest, caf::timespan timeout, F f,
                Ts&&... xs) {
  if (!dest)
    return make_error(errc::invalid_argument,
                      "the cluster module has not started");
  caf::scoped_actor self{dest->home_system()};
  caf::error result;
  self->request(dest, timeout, std::forward<Ts>(xs)...)
    .receive(f, [&](caf::error& err) { result = std::move(err); });
  return result;
}

} // namespace

caf::actor cluster_module::registry() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->registry;
}

caf::error cluster_module::register_name(const std::string& name,
                                         const caf::actor& holder) {
  if (name.empty() || name.size() > limits::max_name_size)
    return make_error(errc::invalid_argument,
                      "a cluster-wide name has 1 to 256 bytes");
  return call(registry(), std::chrono::seconds{30}, [] {},
              reg_name_atom::value, name, holder);
}

bool cluster_module::unregister_name(const std::string& name) {
  bool result = false;
  call(registry(), local_call_timeout, [&](bool x) { result = x; },
       unreg_name_atom::value, name);
  return result;
}

caf::actor cluster_module::whereis_name(const std::string& name) const {
  caf::actor result;
  call(registry(), local_call_timeout, [&](caf::actor& x) { result = x; },
       whereis_atom::value, name);
  return result;
}

std::vector<std::string> cluster_module::registered_names() const {
  std::vector<std::string> result;
  call(registry(), local_call_timeout,
       [&](std::vector<std::string>& xs) { result = std::move(xs); },
       names_atom::value);
  return result;
}

caf::error cluster_module::join_group(const std::string& group,
                                      const caf::actor& member) {
  return call(registry(), local_call_timeout, [] {}, grp_join_atom::value,
              group, member);
}

bool cluster_module::leave_group(const std::string& group,
                                 const caf::actor& member) {
  bool result = false;
  call(registry(), local_call_timeout, [&](bool x) { result = x; },
       grp_leave_atom::value, group, member);
  return result;
}

std::vector<caf::actor>
cluster_module::group_members(const std::string& group) const {
  std::vector<caf::actor> result;
  call(registry(), local_call_timeout,
       [&](std::vector<caf::actor>& xs) { result = std::move(xs); },
       grp_members_atom::value, group);
  return result;
}

caf::actor cluster_module::pick(const std::string& group, pick_policy policy,
                                const std::string& key) const {
  caf::actor result;
  call(registry(), local_call_timeout, [&](caf::actor& x) { result = x; },
       grp_pick_atom::value, group, static_cast<int>(policy), key);
  return result;
}

std::string cluster_module::listen_address() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->listen_address;
}

caf::actor cluster_module::actor() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->actor;
}

} // namespace relay
