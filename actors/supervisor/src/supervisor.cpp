// The public entry points of relay/supervisor.hpp; the actor itself is in
// supervisor_state.cpp.

#include "relay/supervisor.hpp"

#include <cmath>
#include <cstdlib>
#include <cxxabi.h>
#include <memory>
#include <typeinfo>
#include <exception>
#include <optional>

#include <caf/stateful_actor.hpp>

#include "relay/error.hpp"
#include "relay/node.hpp"
#include "relay/node_config.hpp"
#include "supervisor_state.hpp"
#include "supervisor_validation.hpp"

namespace relay {

// -- errors ----------------------------------------------------------------------------

const char* to_string(supervisor_errc x) {
  switch (x) {
    case supervisor_errc::already_started: return "already_started";
    case supervisor_errc::already_present: return "already_present";
    case supervisor_errc::running: return "running";
    case supervisor_errc::restarting: return "restarting";
    case supervisor_errc::not_found: return "not_found";
    case supervisor_errc::simple_one_for_one: return "simple_one_for_one";
    case supervisor_errc::start_failed: return "start_failed";
    case supervisor_errc::failed_to_start_child: return "failed_to_start_child";
    case supervisor_errc::invalid_child_spec: return "invalid_child_spec";
    case supervisor_errc::invalid_supervisor_spec:
      return "invalid_supervisor_spec";
  }
  return "unknown";
}

namespace {

const char* code_name(uint8_t code) {
  if (code == 0 || code > static_cast<uint8_t>(supervisor_errc_last))
    return "unknown";
  return to_string(static_cast<supervisor_errc>(code));
}

// describe() renders supervisor errors as "supervisor.not_found: ...".
const bool category_registered = [] {
  register_error_category(supervisor_error_category, "supervisor", code_name);
  return true;
}();

} // namespace

caf::error make_error(supervisor_errc x, std::string what) {
  (void) category_registered;
  return caf::error{static_cast<uint8_t>(x), supervisor_error_category,
                    caf::make_message(std::move(what))};
}

bool is(const caf::error& x, supervisor_errc code) {
  return x.category() == supervisor_error_category
         && x.code() == static_cast<uint8_t>(code);
}

// -- reports -------------------------------------------------------------------------------

const char* to_string(supervisor_report::kind x) {
  using k = supervisor_report::kind;
  switch (x) {
    case k::started: return "started";
    case k::child_terminated: return "child_terminated";
    case k::start_error: return "start_error";
    case k::shutdown_error: return "shutdown_error";
    case k::reached_max_restart_intensity: return "reached_max_restart_intensity";
    case k::auto_shutdown: return "auto_shutdown";
    case k::shutdown: return "shutdown";
  }
  return "unknown";
}

std::string to_string(const supervisor_report& x) {
  using k = supervisor_report::kind;
  std::string child = x.child_id.empty() ? "child" : "child '" + x.child_id + "'";
  if (x.child)
    child += " (actor " + std::to_string(x.child.id()) + ")";
  std::string result = "supervisor '" + x.supervisor + "': ";
  switch (x.what) {
    case k::started:
      result += child + (x.restart ? " restarted" : " started");
      break;
    case k::child_terminated:
      result += child + " terminated: " + describe(x.reason);
      break;
    case k::start_error:
      result += child + " failed to start: " + describe(x.reason);
      break;
    case k::shutdown_error:
      result += child + " did not stop as asked: " + describe(x.reason);
      break;
    case k::reached_max_restart_intensity:
      result += "reached max restart intensity after " + child
                + " terminated (" + describe(x.reason) + "); shutting down";
      break;
    case k::auto_shutdown:
      result += "significant " + child + " terminated; shutting down";
      break;
    case k::shutdown:
      result += "shut down: " + describe(x.reason);
      break;
  }
  return result;
}

// -- specs ------------------------------------------------------------------------------------

caf::timespan backoff::delay(uint32_t n) const noexcept {
  auto scaled = static_cast<double>(min_delay.count())
                * std::pow(factor, static_cast<double>(n));
  auto cap = static_cast<double>(max_delay.count());
  return caf::timespan{static_cast<caf::timespan::rep>(std::min(scaled, cap))};
}

namespace {

/// "std::runtime_error: disk full".
std::string exception_text(const std::exception& e) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> type{
    abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status), std::free};
  std::string name = status == 0 && type ? type.get() : typeid(e).name();
  return name + ": " + e.what();
}

} // namespace

void child_start::operator()(caf::event_based_actor* self,
                             const caf::message& extra, reply done) const {
  // `done` runs once, and outside the try: an exception from the
  // supervisor's continuation is not the start's failure.
  auto once = std::make_shared<reply>(std::move(done));
  auto finish = [once](result r) {
    if (!*once)
      return;
    auto f = std::move(*once);
    *once = nullptr;
    f(std::move(r));
  };
  std::optional<result> outcome;
  try {
    if (async_)
      async_(self, extra, finish);
    else if (sync_)
      outcome = sync_(self->system(), extra);
    else
      outcome = make_error(supervisor_errc::invalid_child_spec,
                           "no start function");
  } catch (const std::exception& e) {
    outcome = caf::make_error(caf::sec::runtime_error,
                              "start threw " + exception_text(e));
  } catch (...) {
    outcome = caf::make_error(caf::sec::runtime_error,
                              "start threw an exception of unknown type");
  }
  if (outcome)
    finish(std::move(*outcome));
}

// -- spawning ---------------------------------------------------------------------------------

caf::expected<supervisor_actor>
spawn_supervisor(caf::actor_system& sys, supervisor_spec spec,
                 std::vector<child_spec> children) {
  if (auto err = validate_supervisor(spec, children))
    return err;
  auto hdl = sys.spawn(
    [](caf::stateful_actor<supervisor_state>* self, supervisor_spec spec,
       std::vector<child_spec> children) {
      return self->state.make_behavior(std::move(spec), std::move(children));
    },
    std::move(spec), std::move(children));
  return caf::actor_cast<supervisor_actor>(hdl);
}

child_spec supervisor_child(std::string id, supervisor_spec spec,
                            std::vector<child_spec> children) {
  child_spec result;
  result.id = std::move(id);
  result.type = child_type::supervisor;
  result.start = child_start::async(
    [spec = std::move(spec), children = std::move(children)](
      caf::event_based_actor* self, const caf::message&,
      child_start::reply done) {
      auto sup = spawn_supervisor(self->system(), spec, children);
      if (!sup) {
        done(std::move(sup.error()));
        return;
      }
      auto hdl = caf::actor_cast<caf::actor>(*sup);
      // OTP's start_link returns once the child supervisor's init is done.
      self->request(hdl, caf::infinite, wait_started_atom::value)
        .then([done, hdl](ok_atom) { done(hdl); },
              [done](caf::error& err) { done(std::move(err)); });
    });
  return result;
}

namespace {

child_start remote_start_impl(node& n, caf::message target, std::string type,
                              caf::message args) {
  return child_start::async(
    [&n, target = std::move(target), type = std::move(type),
     args = std::move(args)](caf::event_based_actor* self,
                             const caf::message& extra, child_start::reply done) {
      auto request = caf::make_message(spawn_atom::value) + target
                     + caf::make_message(type, std::vector<std::string>{},
                                         args + extra);
      // The spawn service bounds the wait (lookup and spawn timeouts).
      self->request(n.spawn_actor(), caf::infinite, std::move(request))
        .then([done](caf::actor& hdl) { done(std::move(hdl)); },
              [done](caf::error& err) { done(std::move(err)); });
    });
}

} // namespace

child_start remote_start(node& n, std::string uri, std::string type,
                         caf::message args) {
  return remote_start_impl(n, caf::make_message(std::move(uri)),
                           std::move(type), std::move(args));
}

child_start remote_start(node& n, caf::node_id id, std::string type,
                         caf::message args) {
  return remote_start_impl(n, caf::make_message(std::move(id)), std::move(type),
                           std::move(args));
}

void name_exceptions(caf::scheduled_actor* self) {
  self->set_exception_handler([](caf::scheduled_actor*, std::exception_ptr& ptr) {
    try {
      std::rethrow_exception(ptr);
    } catch (const std::exception& e) {
      return caf::make_error(caf::sec::runtime_error, exception_text(e));
    } catch (...) {
      return caf::make_error(caf::sec::runtime_error,
                             "exception of unknown type");
    }
  });
}

void add_supervisor_types(node_config& cfg) {
  cfg.add_message_type<child_info>();
  cfg.add_message_type<std::vector<child_info>>();
  cfg.add_message_type<child_counts>();
  cfg.add_message_type<supervisor_report>();
}

} // namespace relay
