// Remote spawn. Every node runs a spawner, published as
// node::remote_spawner_name, that spawns the actor types registered on its
// configuration with add_actor_type (CAF's factories) for peers; node::
// spawn_on and the spawn_actor() service ask it. Requests and answers are
// ordinary messages `(spawn_atom, type, interface, args...)` -> actor, so
// they get CAF's request ids, timeouts and error answers, and the peer code
// knows nothing of spawning. An actor spawned for a node is stopped with
// exit_reason::remote_link_unreachable when that node goes down, as an
// Erlang process linked to a remote parent dies with the connection.

#include <map>
#include <set>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>

#include "node_impl.hpp"
#include "relay/log.hpp"

namespace relay {

namespace {

caf::error spawn_error(const std::string& type, const caf::error& err) {
  auto what = "cannot spawn '" + type + "': ";
  if (err == caf::sec::unknown_type)
    return make_error(errc::unknown_actor_type,
                      what + "no actor type of that name is registered "
                             "(add_actor_type) on this node");
  if (err == caf::sec::cannot_spawn_actor_from_arguments)
    return make_error(errc::invalid_spawn_arguments,
                      what + "its factory does not take these arguments");
  if (err == caf::sec::unexpected_actor_messaging_interface)
    return make_error(errc::interface_mismatch,
                      what + "it does not implement the expected interface");
  return make_error(errc::invalid_argument, what + describe(err));
}

struct spawner_state {
  static inline const char* name = "relay.spawner";
  /// Actors spawned for each node (weakly: they end by themselves too).
  std::multimap<caf::node_id, caf::actor_addr> spawned;
  /// Nodes this spawner monitors (once each).
  std::set<caf::node_id> monitored;
};

caf::behavior spawner_actor(caf::stateful_actor<spawner_state>* self,
                            node_impl* node) {
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& xs = self->state.spawned;
    for (auto i = xs.begin(); i != xs.end(); ++i)
      if (i->second == dm.source) {
        xs.erase(i);
        return;
      }
  });
  self->set_default_handler(
    [self, node](caf::scheduled_actor*,
                 caf::message_view& xs) -> caf::result<caf::message> {
      auto msg = xs.copy_content_to_message();
      if (msg.size() < 3 || !msg.match_element<caf::atom_value>(0)
          || msg.get_as<caf::atom_value>(0) != spawn_atom::value
          || !msg.match_element<std::string>(1)
          || !msg.match_element<std::vector<std::string>>(2))
        return make_error(errc::invalid_argument,
                          "the spawner takes (spawn_atom, type, interface, "
                          "args...), got "
                            + caf::to_string(msg));
      auto type = msg.get_as<std::string>(1);
      auto& ifs_list = msg.get_as<std::vector<std::string>>(2);
      if (!node->config().allow_remote_spawn)
        return make_error(errc::peer_rejected,
                          "remote spawn is disabled on this node "
                          "(relay.allow-remote-spawn)");
      caf::actor_system::mpi ifs(ifs_list.begin(), ifs_list.end());
      auto spawned = self->system().spawn<caf::actor>(type, msg.drop(3), nullptr,
                                                      true, &ifs);
      if (!spawned)
        return spawn_error(type, spawned.error());
      auto sender = self->current_sender();
      if (sender && sender->node() != self->system().node()) {
        // Stopped when the requesting node goes down.
        if (self->state.monitored.insert(sender->node()).second)
          node->monitor_node(caf::actor_cast<caf::actor>(self), sender->node());
        self->monitor(*spawned);
        self->state.spawned.emplace(sender->node(), spawned->address());
      }
      log(log_level::info, "spawned '" + type + "' as actor "
                             + std::to_string(spawned->id()) + " for "
                             + (sender ? caf::to_string(sender->node())
                                       : std::string{"an anonymous sender"}));
      return caf::make_message(std::move(*spawned));
    });
  return {
    [self](const node_down_msg& down) {
      self->state.monitored.erase(down.node);
      auto range = self->state.spawned.equal_range(down.node);
      for (auto i = range.first; i != range.second; ++i)
        if (auto hdl = caf::actor_cast<caf::actor>(i->second))
          self->send_exit(hdl, caf::exit_reason::remote_link_unreachable);
      self->state.spawned.erase(range.first, range.second);
    },
  };
}

} // namespace

void node_impl::start_remote_spawn() {
  spawner_ = system_.spawn<caf::hidden>(spawner_actor, this);
  if (auto err = names_->publish(caf::actor_cast<caf::strong_actor_ptr>(spawner_),
                                 node::remote_spawner_name, {}))
    throw config_error("cannot publish the spawner: " + describe(err));
  // Blocking lookups: a detached actor of its own, as the lookup actor.
  spawn_client_ = system_.spawn<caf::detached + caf::hidden>(
    [this](caf::event_based_actor* self) -> caf::behavior {
      return {
        [this, self](spawn_atom, const std::string& uri, const std::string& type,
                     const std::vector<std::string>& ifs,
                     caf::message& args) -> caf::result<caf::actor> {
          auto target = lookup(uri, node::remote_spawner_name, {});
          if (!target)
            return std::move(target.error());
          return spawn_via(self, *target, type, ifs, std::move(args));
        },
        [this, self](spawn_atom, const caf::node_id& nid, const std::string& type,
                     const std::vector<std::string>& ifs,
                     caf::message& args) -> caf::result<caf::actor> {
          auto target = lookup(nid, node::remote_spawner_name, {});
          if (!target)
            return std::move(target.error());
          return spawn_via(self, *target, type, ifs, std::move(args));
        },
      };
    });
}

caf::result<caf::actor>
node_impl::spawn_via(caf::event_based_actor* self,
                     const caf::strong_actor_ptr& spawner,
                     const std::string& type, const std::vector<std::string>& ifs,
                     caf::message args) {
  auto rp = self->make_response_promise<caf::actor>();
  auto timeout = cfg_.spawn_timeout;
  auto request = caf::make_message(spawn_atom::value, type, ifs) + args;
  self
    ->request(caf::actor_cast<caf::actor>(spawner), timeout, std::move(request))
    .then([rp](caf::actor& hdl) mutable { rp.deliver(std::move(hdl)); },
          [rp, type, timeout](caf::error& err) mutable {
            if (err == caf::sec::request_timeout)
              err = make_error(errc::spawn_timeout,
                               "no answer to the spawn of '" + type + "' within "
                                 + std::to_string(
                                   std::chrono::duration_cast<
                                     std::chrono::milliseconds>(timeout)
                                     .count())
                                 + " ms (relay.spawn-timeout)");
            rp.deliver(std::move(err));
          });
  return rp;
}

void node_impl::stop_remote_spawn() {
  // The handles stay set (node::spawn_actor may copy them on any thread
  // until the node is gone); the actors end here.
  caf::scoped_actor self{system_};
  for (auto* hdl : {&spawner_, &spawn_client_}) {
    self->send_exit(*hdl, caf::exit_reason::user_shutdown);
    self->wait_for(*hdl);
  }
}

} // namespace relay
