// A supervisor's set-up and its message handlers; each handler hands its
// work to supervisor_state as an operation (supervisor_state.hpp).

#include "supervisor_state.hpp"

#include <algorithm>

#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include "relay/error.hpp"
#include "relay/node.hpp"

namespace relay {

// -- set-up ---------------------------------------------------------------------------

caf::behavior supervisor_state::make_behavior(supervisor_spec spec,
                                              std::vector<child_spec> children) {
  spec_ = std::move(spec);
  if (spec_.name.empty())
    spec_.name = "supervisor-" + std::to_string(self_->id());
  if (spec_.report_to) {
    self_->monitor(spec_.report_to);
    subscribers_.push_back(spec_.report_to);
  }
  rng_.seed(static_cast<std::minstd_rand::result_type>(
    spec_.seed != 0 ? spec_.seed : self_->id()));
  if (dynamic()) {
    template_ = std::move(children.front());
  } else {
    for (auto& cs : children) {
      auto c = std::make_shared<child_record>();
      c->spec = std::move(cs);
      c->serial = next_serial_++;
      children_.push_back(std::move(c));
    }
  }
  // No child outlives its supervisor, whatever ends it (OTP links them).
  self_->attach_functor([shared = shared_](const caf::error& reason) {
    auto why = reason ? reason : caf::make_error(caf::exit_reason::user_shutdown);
    for (auto& kvp : shared->live)
      caf::anon_send(kvp.second, caf::exit_msg{caf::actor_addr{}, why});
    shared->live.clear();
    for (auto& rp : shared->waiting_start)
      rp.deliver(why);
    shared->waiting_start.clear();
    auto pending = std::move(shared->deferred);
    shared->deferred.clear();
    for (auto& d : pending)
      if (d.cancel)
        d.cancel();
  });
  self_->set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
  self_->set_exit_handler([this](caf::exit_msg& em) {
    if (!em.reason)
      return; // exit_reason::normal, as CAF's default handler
    post([this, reason = em.reason] { shutdown(reason); });
  });
  self_->set_default_handler(
    [this](caf::scheduled_actor*, caf::message_view& xs) -> caf::result<caf::message> {
      // (start_child_atom, args...) from a handle that cannot send a
      // caf::message (a remote one).
      auto& content = xs.content();
      if (content.size() >= 1 && content.type(0).first == caf::type_nr<caf::atom_value>::value
          && content.get_as<caf::atom_value>(0) == start_child_atom::value) {
        auto args = xs.copy_content_to_message().drop(1);
        auto rp = self_->make_response_promise();
        post([this, rp, args]() mutable { start_dynamic_child(std::move(args), rp); },
             cancel_with(rp));
        return rp;
      }
      return caf::print_and_drop(self_, xs);
    });
  // Visible to relayctl tree (answers at once, also during an operation).
  if (spec_.node != nullptr)
    spec_.node->add_introspection_source(
      "tree", caf::actor_cast<caf::actor>(self_));
  // Start the children on a message of our own, so that requests already
  // queued (wait_started from the parent) are seen first and wait.
  busy_ = true;
  self_->send(self_, init_atom::value);
  return {
    [this](init_atom) { init(); },
    [this](introspect_atom, const std::string&, const std::string&) {
      return introspect();
    },
    [this](start_child_atom, child_spec& cs) {
      auto rp = self_->make_response_promise();
      post([this, rp, cs = std::move(cs)]() mutable { start_child(std::move(cs), rp); },
           cancel_with(rp));
      return rp;
    },
    [this](start_child_atom, caf::message& args) {
      auto rp = self_->make_response_promise();
      post([this, rp, args = std::move(args)]() mutable {
        start_dynamic_child(std::move(args), rp);
      }, cancel_with(rp));
      return rp;
    },
    [this](terminate_child_atom, const std::string& id) {
      auto rp = self_->make_response_promise();
      post([this, rp, id]() mutable { terminate_child(id, rp); }, cancel_with(rp));
      return rp;
    },
    [this](terminate_child_atom, const caf::actor& child) {
      auto rp = self_->make_response_promise();
      post([this, rp, child]() mutable { terminate_dynamic_child(child, rp); },
           cancel_with(rp));
      return rp;
    },
    [this](restart_child_atom, const std::string& id) {
      auto rp = self_->make_response_promise();
      post([this, rp, id]() mutable { restart_child(id, rp); }, cancel_with(rp));
      return rp;
    },
    [this](delete_child_atom, const std::string& id) {
      auto rp = self_->make_response_promise();
      post([this, rp, id]() mutable { delete_child(id, rp); }, cancel_with(rp));
      return rp;
    },
    [this](which_children_atom) {
      auto rp = self_->make_response_promise();
      post([this, rp]() mutable { rp.deliver(which_children()); }, cancel_with(rp));
      return rp;
    },
    [this](count_children_atom) {
      auto rp = self_->make_response_promise();
      post([this, rp]() mutable { rp.deliver(count_children()); }, cancel_with(rp));
      return rp;
    },
    [this](subscribe_reports_atom, const caf::actor& who) {
      if (!who || std::find(subscribers_.begin(), subscribers_.end(), who)
                    != subscribers_.end())
        return;
      self_->monitor(who);
      subscribers_.push_back(who);
    },
    [this](unsubscribe_reports_atom, const caf::actor& who) {
      auto i = std::find(subscribers_.begin(), subscribers_.end(), who);
      if (i == subscribers_.end())
        return;
      self_->demonitor(who);
      subscribers_.erase(i);
    },
    [this](wait_started_atom) {
      auto rp = self_->make_response_promise();
      if (started_)
        rp.deliver(ok_atom::value);
      else
        shared_->waiting_start.push_back(rp);
      return rp;
    },
    [this](shutdown_timer_atom, uint64_t timer) { on_shutdown_timer(timer); },
    [this](try_again_atom, uint64_t serial, uint64_t epoch) {
      post([this, serial, epoch] {
        // OTP's try_again_restart: only if the child still waits for it.
        auto c = find_serial(serial);
        if (c && c->st == child_record::state::restarting
            && c->restart_epoch == epoch)
          restart(c);
      });
    },
    [this](delayed_restart_atom, uint64_t serial, uint64_t epoch) {
      post([this, serial, epoch] {
        auto c = find_serial(serial);
        if (c && c->st == child_record::state::restarting
            && c->restart_epoch == epoch)
          restart_now(c);
      });
    },
  };
}

} // namespace relay
