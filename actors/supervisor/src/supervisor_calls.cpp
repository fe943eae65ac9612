// The management interface of a supervisor (OTP's start_child,
// terminate_child, restart_child, delete_child, which_children,
// count_children): each runs as an operation of supervisor_state (see
// supervisor_state.hpp), answering through its response promise.

#include "supervisor_state.hpp"

#include "relay/error.hpp"
#include "supervisor_validation.hpp"

namespace relay {

// -- management calls ---------------------------------------------------------------------

void supervisor_state::start_child(child_spec spec, caf::response_promise rp) {
  if (dynamic()) {
    rp.deliver(make_error(supervisor_errc::simple_one_for_one,
                          "supervisor '" + spec_.name
                            + "' is simple_one_for_one: start_child takes the "
                              "arguments for its template"));
    return;
  }
  if (auto err = validate_child(spec_, spec)) {
    rp.deliver(std::move(err));
    return;
  }
  if (auto existing = find(spec.id)) {
    if (existing->st == child_record::state::running || existing->exit_pending)
      rp.deliver(make_error(supervisor_errc::already_started,
                            describe_child(*existing) + " runs as actor "
                              + std::to_string(existing->handle.id())));
    else
      rp.deliver(make_error(supervisor_errc::already_present,
                            describe_child(*existing) + " exists (not running)"));
    return;
  }
  auto c = std::make_shared<child_record>();
  c->spec = std::move(spec);
  c->serial = next_serial_++;
  children_.push_back(c);
  begin_op();
  start_one(c, false, false, [this, c, rp](caf::error err) mutable {
    if (err) {
      forget(c);
      rp.deliver(std::move(err));
    } else {
      if (c->st == child_record::state::undefined
          && c->spec.restart == restart_type::temporary)
        forget(c);
      rp.deliver(c->handle);
    }
    end_op();
  });
}

void supervisor_state::start_dynamic_child(caf::message args,
                                           caf::response_promise rp) {
  if (!dynamic()) {
    rp.deliver(make_error(supervisor_errc::simple_one_for_one,
                          "start_child with arguments needs a "
                          "simple_one_for_one supervisor; '"
                            + spec_.name + "' is not one"));
    return;
  }
  auto c = std::make_shared<child_record>();
  c->spec = template_;
  c->extra = std::move(args);
  c->serial = next_serial_++;
  children_.push_back(c);
  begin_op();
  start_one(c, false, false, [this, c, rp](caf::error err) mutable {
    if (err || c->st != child_record::state::running)
      forget(c);
    if (err)
      rp.deliver(std::move(err));
    else
      rp.deliver(c->handle);
    end_op();
  });
}

void supervisor_state::terminate_child(const std::string& id,
                                       caf::response_promise rp) {
  if (dynamic()) {
    rp.deliver(make_error(supervisor_errc::simple_one_for_one,
                          "supervisor '" + spec_.name
                            + "' is simple_one_for_one: terminate its "
                              "children by handle"));
    return;
  }
  auto c = find(id);
  if (!c) {
    rp.deliver(make_error(supervisor_errc::not_found, "no child '" + id
                                                        + "' in supervisor '"
                                                        + spec_.name + "'"));
    return;
  }
  ++c->restart_epoch; // cancels a pending restart or exit, as OTP's del_child
  c->exit_pending = false;
  begin_op();
  stop_one(c, [this, c, rp]() mutable {
    if (c->spec.restart == restart_type::temporary)
      forget(c);
    rp.deliver(ok_atom::value);
    end_op();
  });
}

void supervisor_state::terminate_dynamic_child(const caf::actor& child,
                                               caf::response_promise rp) {
  child_ptr c;
  if (dynamic() && child) {
    auto addr = child.address();
    for (auto& x : children_)
      if (x->last_addr == addr)
        c = x;
  }
  if (!c) {
    rp.deliver(make_error(supervisor_errc::not_found,
                          "that actor is not a child of supervisor '"
                            + spec_.name + "'"));
    return;
  }
  ++c->restart_epoch;
  c->exit_pending = false;
  begin_op();
  stop_one(c, [this, c, rp]() mutable {
    forget(c);
    rp.deliver(ok_atom::value);
    end_op();
  });
}

void supervisor_state::restart_child(const std::string& id,
                                     caf::response_promise rp) {
  auto c = dynamic() ? nullptr : find(id);
  if (auto err = check_idle(id, c, "restart")) {
    rp.deliver(std::move(err));
    return;
  }
  begin_op();
  start_one(c, true, false, [this, c, rp](caf::error err) mutable {
    if (err)
      rp.deliver(std::move(err));
    else
      rp.deliver(c->handle);
    end_op();
  });
}

void supervisor_state::delete_child(const std::string& id,
                                    caf::response_promise rp) {
  auto c = dynamic() ? nullptr : find(id);
  if (auto err = check_idle(id, c, "delete")) {
    rp.deliver(std::move(err));
    return;
  }
  forget(c);
  rp.deliver(ok_atom::value);
}

caf::error supervisor_state::check_idle(const std::string& id,
                                        const child_ptr& c,
                                        const char* what) const {
  if (dynamic())
    return make_error(supervisor_errc::simple_one_for_one,
                      std::string{"cannot "} + what + " a child of "
                        + "simple_one_for_one supervisor '" + spec_.name + "'");
  if (!c)
    return make_error(supervisor_errc::not_found,
                      "no child '" + id + "' in supervisor '" + spec_.name + "'");
  if (c->st == child_record::state::running || c->exit_pending)
    return make_error(supervisor_errc::running, describe_child(*c) + " is running");
  if (c->st == child_record::state::restarting)
    return make_error(supervisor_errc::restarting,
                      describe_child(*c) + " is restarting");
  return caf::none;
}

std::vector<child_info> supervisor_state::which_children() const {
  std::vector<child_info> result;
  result.reserve(children_.size());
  for (auto& c : children_) {
    child_info info;
    info.id = dynamic() ? std::string{} : c->spec.id;
    info.type = c->spec.type;
    switch (c->st) {
      case child_record::state::running:
        info.state = child_info::status::running;
        info.handle = c->handle;
        break;
      case child_record::state::restarting:
        info.state = child_info::status::restarting;
        break;
      case child_record::state::undefined:
        info.state = child_info::status::undefined;
        break;
    }
    result.push_back(std::move(info));
  }
  return result;
}

child_counts supervisor_state::count_children() const {
  child_counts result;
  result.specs = dynamic() ? 1 : children_.size();
  for (auto& c : children_) {
    if (c->st == child_record::state::running)
      ++result.active;
    if (c->spec.type == child_type::supervisor)
      ++result.supervisors;
    else
      ++result.workers;
  }
  return result;
}

} // namespace relay
