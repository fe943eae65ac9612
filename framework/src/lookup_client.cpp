#include "lookup_client.hpp"

#include <algorithm>

#include "node_impl.hpp"
#include "peer.hpp"
#include "relay/error.hpp"

namespace relay {

// -- lookup_client ----------------------------------------------------------------

uint64_t lookup_client::begin(const caf::node_id& to) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto id = next_++;
  pending_[id].to = to;
  return id;
}

void lookup_client::complete(uint64_t id, const caf::node_id& from,
                             caf::expected<lookup_result> result) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = pending_.find(id);
    if (i == pending_.end() || i->second.to != from)
      return; // timed out already, or not asked
    i->second.result = std::move(result);
  }
  cv_.notify_all();
}

std::optional<caf::expected<lookup_result>>
lookup_client::wait(uint64_t id, std::chrono::steady_clock::time_point deadline,
                    const std::function<bool()>& gave_up) {
  std::unique_lock<std::mutex> guard{mtx_};
  cv_.wait_until(guard, deadline, [&] {
    return pending_[id].result.has_value() || gave_up();
  });
  auto result = std::move(pending_[id].result);
  pending_.erase(id);
  return result;
}

void lookup_client::cancel(uint64_t id) {
  std::lock_guard<std::mutex> guard{mtx_};
  pending_.erase(id);
}

void lookup_client::wake_all() {
  { std::lock_guard<std::mutex> guard{mtx_}; }
  cv_.notify_all();
}

// -- node_impl::lookup --------------------------------------------------------------

namespace {

std::string joined(const std::vector<std::string>& xs) {
  std::string result;
  for (auto& x : xs)
    result += (result.empty() ? "" : "; ") + x;
  return result;
}

caf::error check_interface(const std::string& what,
                           const std::vector<std::string>& expected,
                           const std::vector<std::string>& actual) {
  if (expected.empty())
    return caf::none;
  if (actual.empty())
    return make_error(errc::interface_mismatch,
                      what + " is dynamically typed, expected a typed actor");
  for (auto& sig : expected)
    if (std::find(actual.begin(), actual.end(), sig) == actual.end())
      return make_error(errc::interface_mismatch,
                        what + " implements {" + joined(actual)
                          + "}, expected at least {" + joined(expected) + "}");
  return caf::none;
}

} // namespace

caf::expected<caf::strong_actor_ptr>
node_impl::lookup(const std::string& uri, const std::string& name,
                  const std::vector<std::string>& interface) {
  return lookup_via([&] { return connect(uri); }, uri, name, interface);
}

caf::expected<caf::strong_actor_ptr>
node_impl::lookup(const caf::node_id& node, const std::string& name,
                  const std::vector<std::string>& interface) {
  auto what = "node " + caf::to_string(node);
  return lookup_via(
    [&]() -> caf::expected<std::shared_ptr<peer>> {
      for (auto& p : established_peers())
        if (p->remote_id() == node)
          return p;
      return make_error(errc::node_unreachable, "not connected to " + what);
    },
    what, name, interface);
}

caf::expected<caf::strong_actor_ptr> node_impl::lookup_via(
  const std::function<caf::expected<std::shared_ptr<peer>>()>& connect,
  const std::string& uri, const std::string& name,
  const std::vector<std::string>& interface) {
  auto timeout = cfg_.lookup_timeout;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto what = "'" + name + "' at " + uri;
  // A connection that closes before the reply (it lost a tie-break against
  // a simultaneous connection, or broke) is retried while time remains, a
  // few times at most.
  constexpr int max_attempts = 3;
  for (int attempt = 1;; ++attempt) {
    bool may_retry = attempt < max_attempts;
    auto p = connect();
    if (!p)
      return std::move(p.error());
    auto id = lookups_.begin((*p)->remote_id());
    if (auto err = (*p)->send_lookup(id, name)) {
      lookups_.cancel(id);
      if (may_retry && std::chrono::steady_clock::now() < deadline
          && (*p)->current_state() == peer::state::closed)
        continue;
      return err;
    }
    auto reply = lookups_.wait(id, deadline, [&] {
      return (*p)->current_state() == peer::state::closed;
    });
    if (!reply) {
      if (std::chrono::steady_clock::now() < deadline) {
        if (may_retry)
          continue; // the connection closed first: try again
        return make_error(errc::connection_closed,
                          "connection to " + uri
                            + " closed before the lookup of '" + name
                            + "' was answered");
      }
      return make_error(errc::lookup_timeout,
                        "no reply to the lookup of " + what + " within "
                          + std::to_string(
                            std::chrono::duration_cast<
                              std::chrono::milliseconds>(timeout)
                              .count())
                          + " ms");
    }
    if (!*reply)
      return std::move(reply->error());
    if (auto err = check_interface(what, interface, (*reply)->interface))
      return err;
    return proxies_.get_or_put((*p)->remote_id(), (*reply)->aid);
  }
}

} // namespace relay
