#include "supervisor_validation.hpp"

#include <set>

namespace relay {

caf::error validate_child(const supervisor_spec& sup, const child_spec& child) {
  bool dynamic = sup.strategy == restart_strategy::simple_one_for_one;
  auto sup_name = sup.name.empty() ? std::string{"(unnamed)"} : sup.name;
  auto what = "child '" + child.id + "' of supervisor '" + sup_name + "': ";
  auto fail = [&](const std::string& rule) {
    return make_error(supervisor_errc::invalid_child_spec, what + rule);
  };
  if (!dynamic && child.id.empty())
    return fail("the id is empty");
  if (!child.start)
    return fail("no start function");
  if (child.significant) {
    if (sup.auto_shutdown == auto_shutdown::never)
      return fail("significant children need auto_shutdown other than never");
    if (child.restart == restart_type::permanent)
      return fail("a permanent child cannot be significant");
  }
  if (!child.name.empty() && sup.node == nullptr)
    return fail("a named child needs supervisor_spec::node");
  if (!child.name.empty() && dynamic)
    return fail("children of a simple_one_for_one supervisor cannot share "
                "one name");
  auto policy = child.effective_shutdown();
  if (policy.how == shutdown_policy::kind::timeout
      && policy.timeout.count() <= 0)
    return fail("a shutdown timeout must be positive");
  auto& b = child.restart_delay;
  if (b.enabled()
      && (b.max_delay < b.min_delay || b.factor < 1.0 || b.random_factor < 0
          || b.random_factor > 1.0))
    return fail("restart_delay needs min_delay <= max_delay, factor >= 1 and "
                "random_factor in [0, 1]");
  return caf::none;
}

caf::error validate_supervisor(const supervisor_spec& sup,
                               const std::vector<child_spec>& children) {
  auto sup_name = sup.name.empty() ? std::string{"(unnamed)"} : sup.name;
  auto fail = [&](const std::string& rule) {
    return make_error(supervisor_errc::invalid_supervisor_spec,
                      "supervisor '" + sup_name + "': " + rule);
  };
  if (sup.period.count() <= 0)
    return fail("the period must be positive");
  if (sup.strategy == restart_strategy::simple_one_for_one) {
    if (children.size() != 1)
      return fail("a simple_one_for_one supervisor takes exactly one child "
                  "spec, its template (got "
                  + std::to_string(children.size()) + ")");
    if (sup.auto_shutdown != auto_shutdown::never)
      return fail("auto_shutdown does not combine with simple_one_for_one");
  }
  std::set<std::string> ids;
  for (auto& child : children) {
    if (auto err = validate_child(sup, child))
      return err;
    if (sup.strategy != restart_strategy::simple_one_for_one
        && !ids.insert(child.id).second)
      return make_error(supervisor_errc::invalid_child_spec,
                        "supervisor '" + sup_name + "': two children have the id '"
                          + child.id + "'");
  }
  return caf::none;
}

} // namespace relay
