// A supervisor's answer to introspection (topic "tree", relayctl tree): its
// flags and one entry per child. Each supervisor answers for its own level;
// relayctl nests them by actor id (a child supervisor is a child whose
// actor is another supervisor that answered).

#include "supervisor_state.hpp"

#include <nlohmann/json.hpp>

#include "relay/detail/json_text.hpp"

#include <caf/node_id.hpp>

namespace relay {

namespace {

const char* name_of(restart_strategy x) {
  switch (x) {
    case restart_strategy::one_for_one:
      return "one_for_one";
    case restart_strategy::one_for_all:
      return "one_for_all";
    case restart_strategy::rest_for_one:
      return "rest_for_one";
    case restart_strategy::simple_one_for_one:
      return "simple_one_for_one";
  }
  return "?";
}

const char* name_of(restart_type x) {
  switch (x) {
    case restart_type::permanent:
      return "permanent";
    case restart_type::transient:
      return "transient";
    case restart_type::temporary:
      return "temporary";
  }
  return "?";
}

const char* name_of(child_record::state x) {
  switch (x) {
    case child_record::state::running:
      return "running";
    case child_record::state::restarting:
      return "restarting";
    case child_record::state::undefined:
      return "undefined";
  }
  return "?";
}

} // namespace

std::string supervisor_state::introspect() const {
  using json = nlohmann::json;
  auto children = json::array();
  for (auto& c : children_) {
    json child{
      {"id", dynamic() ? std::string{} : c->spec.id},
      {"state", name_of(c->st)},
      {"type", c->spec.type == child_type::supervisor ? "supervisor" : "worker"},
      {"restart", name_of(c->spec.restart)},
      {"restarts", c->restarts},
      {"actor", 0},
    };
    if (c->st == child_record::state::running && c->handle) {
      child["actor"] = c->handle.id();
      if (c->handle.node() != self_->node())
        child["node"] = caf::to_string(c->handle.node());
    }
    if (c->last_exit)
      child["last_exit"] = self_->system().render(c->last_exit);
    if (!c->spec.name.empty())
      child["name"] = c->spec.name;
    children.push_back(std::move(child));
  }
  json doc{
    {"kind", "supervisor"},
    {"name", spec_.name},
    {"actor", self_->id()},
    {"strategy", name_of(spec_.strategy)},
    {"intensity", spec_.intensity},
    {"period_ms",
     std::chrono::duration_cast<std::chrono::milliseconds>(spec_.period)
       .count()},
    {"restarts", total_restarts_},
    {"children", std::move(children)},
  };
  // Exit reasons may quote peers' text: never throw on bad UTF-8.
  return detail::json_text(doc);
}

} // namespace relay
