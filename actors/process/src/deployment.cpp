// Deployment files: TOML read with toml++ (Debian's libtomlplusplus-dev), a
// well-kept parser that reports the line and column of every value, so a
// bad file names its line and key.

#include "relay/deployment.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "relay/error.hpp"
#include "relay/node.hpp"

namespace relay {

namespace {

/// Thrown inside the parser, turned into an error at its edge.
struct deployment_error {
  std::string text;
};

class reader {
public:
  reader(std::string source, std::string base_dir)
    : source_(std::move(source)), base_dir_(std::move(base_dir)) {
    // nop
  }

  [[noreturn]] void fail(const toml::source_region& where, const std::string& key,
                         const std::string& problem) const {
    std::ostringstream out;
    out << source_ << ":" << where.begin.line << ":" << where.begin.column << ": "
        << key << ": " << problem;
    throw deployment_error{out.str()};
  }

  /// Rejects keys of `table` not in `known` (a typo must not be ignored).
  void only(const toml::table& table, const std::string& prefix,
            std::initializer_list<const char*> known) const {
    for (auto& [key, value] : table) {
      bool ok = false;
      for (auto k : known)
        ok = ok || key.str() == k;
      if (!ok)
        fail(value.source(), prefix + std::string{key.str()}, "unknown key");
    }
  }

  std::string string(const toml::table& t, const std::string& prefix,
                     const char* key, std::optional<std::string> fallback = {}) const {
    auto node = t.get(key);
    if (!node) {
      if (fallback)
        return *fallback;
      fail(t.source(), prefix + key, "missing (a string is required)");
    }
    auto value = node->value<std::string>();
    if (!value)
      fail(node->source(), prefix + key, "must be a string");
    return *value;
  }

  int64_t integer(const toml::table& t, const std::string& prefix,
                  const char* key, int64_t fallback, int64_t min,
                  int64_t max) const {
    auto node = t.get(key);
    if (!node)
      return fallback;
    // Checked first: value<int64_t>() also converts a float, and one out
    // of range is undefined behaviour (found by fuzz/deployment_fuzzer).
    if (!node->is_integer())
      fail(node->source(), prefix + key, "must be an integer");
    auto value = node->value<int64_t>();
    if (!value)
      fail(node->source(), prefix + key, "must be an integer");
    if (*value < min || *value > max)
      fail(node->source(), prefix + key,
           "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return *value;
  }

  /// "250ms", "5s", "2min".
  caf::timespan duration(const toml::node& node, const std::string& key) const {
    auto text = node.value<std::string>();
    if (!text)
      fail(node.source(), key, "must be a duration string such as \"500ms\" or \"5s\"");
    size_t pos = 0;
    while (pos < text->size() && std::isdigit(static_cast<unsigned char>((*text)[pos])))
      ++pos;
    auto unit = text->substr(pos);
    if (pos == 0 || pos > 9 || (unit != "ms" && unit != "s" && unit != "min"))
      fail(node.source(), key,
           "'" + *text + "' is not a duration (digits, then ms, s or min)");
    auto n = std::stoll(text->substr(0, pos));
    if (unit == "ms")
      return std::chrono::milliseconds{n};
    if (unit == "s")
      return std::chrono::seconds{n};
    return std::chrono::minutes{n};
  }

  caf::timespan duration(const toml::table& t, const std::string& prefix,
                         const char* key, caf::timespan fallback) const {
    auto node = t.get(key);
    return node ? duration(*node, prefix + key) : fallback;
  }

  std::string path(const toml::node& node, const std::string& key,
                   const std::string& value) const {
    if (value.empty())
      fail(node.source(), key, "must not be empty");
    std::filesystem::path p{value};
    if (p.is_relative())
      p = std::filesystem::path{base_dir_} / p;
    return p.lexically_normal().string();
  }

  supervisor_spec supervisor(const toml::table& root) const {
    supervisor_spec result;
    auto node = root.get("supervisor");
    if (!node)
      return result;
    auto t = node->as_table();
    if (!t)
      fail(node->source(), "supervisor", "must be a table");
    std::string p = "supervisor.";
    only(*t, p, {"name", "strategy", "intensity", "period"});
    result.name = string(*t, p, "name", std::string{"deployment"});
    auto strategy = string(*t, p, "strategy", std::string{"one_for_one"});
    if (strategy == "one_for_one")
      result.strategy = restart_strategy::one_for_one;
    else if (strategy == "one_for_all")
      result.strategy = restart_strategy::one_for_all;
    else if (strategy == "rest_for_one")
      result.strategy = restart_strategy::rest_for_one;
    else
      fail(t->get("strategy")->source(), p + "strategy",
           "'" + strategy + "' is not one_for_one, one_for_all or rest_for_one");
    result.intensity = static_cast<uint32_t>(
      integer(*t, p, "intensity", 1, 0, 1000000));
    result.period = duration(*t, p, "period", std::chrono::seconds{5});
    if (result.period.count() <= 0)
      fail(t->get("period")->source(), p + "period", "must be positive");
    return result;
  }

  deployment_process process(const toml::table& t, size_t index) const {
    std::string p = "process[" + std::to_string(index) + "].";
    only(t, p, {"id", "executable", "args", "env", "working_dir", "count",
                "channel", "restart", "shutdown", "start_timeout"});
    deployment_process result;
    result.id = string(t, p, "id");
    if (result.id.empty())
      fail(t.get("id")->source(), p + "id", "must not be empty");
    auto exe = string(t, p, "executable");
    result.spec.executable = path(*t.get("executable"), p + "executable", exe);
    if (::access(result.spec.executable.c_str(), X_OK) != 0)
      fail(t.get("executable")->source(), p + "executable",
           "'" + result.spec.executable + "' is not an executable file");
    if (auto args = t.get("args")) {
      auto array = args->as_array();
      if (!array)
        fail(args->source(), p + "args", "must be an array of strings");
      for (auto& a : *array) {
        auto s = a.value<std::string>();
        if (!s)
          fail(a.source(), p + "args", "must be an array of strings");
        result.spec.args.push_back(*s);
      }
    }
    if (auto env = t.get("env")) {
      auto table = env->as_table();
      if (!table)
        fail(env->source(), p + "env", "must be a table of strings");
      for (auto& [key, value] : *table) {
        auto s = value.value<std::string>();
        if (!s)
          fail(value.source(), p + "env." + std::string{key.str()}, "must be a string");
        result.spec.env[std::string{key.str()}] = *s;
      }
    }
    if (auto dir = t.get("working_dir"))
      result.spec.working_dir = path(*dir, p + "working_dir",
                                     string(t, p, "working_dir"));
    result.count = static_cast<size_t>(
      integer(t, p, "count", 1, 1, deployment_limits::max_count));
    result.channel = string(t, p, "channel", std::string{"socketpair"});
    if (result.channel != "socketpair" && result.channel != "pipe"
        && result.channel != "uds" && result.channel != "shm")
      fail(t.get("channel")->source(), p + "channel",
           "'" + result.channel + "' is not socketpair, pipe, uds or shm");
    if (result.channel == "socketpair" || result.channel == "pipe")
      result.spec.channel = result.channel;
    auto restart = string(t, p, "restart", std::string{"permanent"});
    if (restart == "permanent")
      result.restart = restart_type::permanent;
    else if (restart == "transient")
      result.restart = restart_type::transient;
    else if (restart == "temporary")
      result.restart = restart_type::temporary;
    else
      fail(t.get("restart")->source(), p + "restart",
           "'" + restart + "' is not permanent, transient or temporary");
    if (auto shutdown = t.get("shutdown")) {
      auto text = shutdown->value<std::string>();
      if (text && *text == "brutal_kill")
        result.shutdown = shutdown_policy::brutal_kill();
      else if (text && *text == "infinity")
        result.shutdown = shutdown_policy::infinity();
      else
        result.shutdown = shutdown_policy::after(duration(*shutdown, p + "shutdown"));
    }
    result.spec.start_timeout = duration(t, p, "start_timeout",
                                         std::chrono::seconds{10});
    return result;
  }

  deployment read(const toml::table& root) const {
    only(root, "", {"supervisor", "process"});
    deployment result;
    result.source = source_;
    result.supervisor = supervisor(root);
    auto procs = root.get("process");
    if (!procs)
      fail(root.source(), "process", "missing: at least one [[process]] table");
    auto array = procs->as_array();
    if (!array || array->empty())
      fail(procs->source(), "process", "must be one or more [[process]] tables");
    if (array->size() > deployment_limits::max_processes)
      fail(procs->source(), "process", "more than "
                                         + std::to_string(deployment_limits::max_processes)
                                         + " entries");
    std::set<std::string> ids;
    size_t index = 0;
    for (auto& entry : *array) {
      auto t = entry.as_table();
      if (!t)
        fail(entry.source(), "process[" + std::to_string(index) + "]",
             "must be a table");
      auto proc = process(*t, index);
      if (!ids.insert(proc.id).second)
        fail(t->get("id")->source(), "process[" + std::to_string(index) + "].id",
             "'" + proc.id + "' is used twice");
      result.processes.push_back(std::move(proc));
      ++index;
    }
    return result;
  }

private:
  std::string source_;
  std::string base_dir_;
};

} // namespace

std::vector<std::string> deployment::endpoint_channels() const {
  std::vector<std::string> result;
  for (auto& p : processes)
    if (p.channel != "socketpair" && p.channel != "pipe"
        && std::find(result.begin(), result.end(), p.channel) == result.end())
      result.push_back(p.channel);
  return result;
}

caf::expected<deployment> parse_deployment(std::string_view text,
                                           const std::string& source,
                                           const std::string& base_dir) {
  try {
    auto root = toml::parse(text, source);
    return reader{source, base_dir}.read(root);
  } catch (const toml::parse_error& e) {
    std::ostringstream out;
    out << source << ":" << e.source().begin.line << ":" << e.source().begin.column
        << ": " << e.description();
    return make_error(errc::invalid_argument, out.str());
  } catch (const deployment_error& e) {
    return make_error(errc::invalid_argument, e.text);
  }
}

caf::expected<deployment> load_deployment(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec)
    return make_error(errc::invalid_argument,
                      path + ": cannot read: " + ec.message());
  constexpr size_t max_size = 1 << 20;
  if (size > max_size)
    return make_error(errc::invalid_argument,
                      path + ": larger than 1 MiB; not a deployment file");
  std::ifstream in{path};
  std::stringstream buf;
  buf << in.rdbuf();
  auto base = std::filesystem::path{path}.parent_path().string();
  return parse_deployment(buf.str(), path, base.empty() ? "." : base);
}

caf::expected<std::vector<child_spec>>
deployment_children(node& n, const deployment& d,
                    const std::vector<std::pair<std::string, std::string>>& endpoints) {
  std::vector<child_spec> result;
  for (auto& p : d.processes) {
    auto spec = p.spec;
    if (p.channel != "socketpair" && p.channel != "pipe") {
      auto i = std::find_if(endpoints.begin(), endpoints.end(),
                            [&](auto& e) { return e.first == p.channel; });
      if (i == endpoints.end())
        return make_error(errc::invalid_argument,
                          "process '" + p.id + "' uses channel " + p.channel
                            + " but the parent listens on no such endpoint");
      spec.parent_uri = i->second;
    }
    for (size_t k = 1; k <= p.count; ++k) {
      child_spec c;
      c.id = p.count == 1 ? p.id : p.id + "-" + std::to_string(k);
      c.restart = p.restart;
      c.shutdown = p.shutdown;
      c.start = process_start(n, spec);
      result.push_back(std::move(c));
    }
  }
  return result;
}

} // namespace relay
