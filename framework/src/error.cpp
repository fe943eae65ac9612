#include "relay/error.hpp"

#include <algorithm>
#include <mutex>
#include <vector>

#include <caf/message.hpp>

namespace relay {

const char* to_string(errc x) {
  switch (x) {
    case errc::invalid_uri: return "invalid_uri";
    case errc::unknown_scheme: return "unknown_scheme";
    case errc::listen_failed: return "listen_failed";
    case errc::connect_failed: return "connect_failed";
    case errc::connect_timeout: return "connect_timeout";
    case errc::connection_closed: return "connection_closed";
    case errc::peer_rejected: return "peer_rejected";
    case errc::handshake_failed: return "handshake_failed";
    case errc::handshake_timeout: return "handshake_timeout";
    case errc::version_mismatch: return "version_mismatch";
    case errc::frame_too_large: return "frame_too_large";
    case errc::protocol_error: return "protocol_error";
    case errc::unregistered_type: return "unregistered_type";
    case errc::unknown_type_id: return "unknown_type_id";
    case errc::no_such_actor: return "no_such_actor";
    case errc::name_not_found: return "name_not_found";
    case errc::interface_mismatch: return "interface_mismatch";
    case errc::node_unreachable: return "node_unreachable";
    case errc::already_registered: return "already_registered";
    case errc::lookup_timeout: return "lookup_timeout";
    case errc::invalid_argument: return "invalid_argument";
    case errc::authentication_failed: return "authentication_failed";
    case errc::insecure_configuration: return "insecure_configuration";
    case errc::heartbeat_timeout: return "heartbeat_timeout";
    case errc::unknown_actor_type: return "unknown_actor_type";
    case errc::invalid_spawn_arguments: return "invalid_spawn_arguments";
    case errc::spawn_timeout: return "spawn_timeout";
    case errc::overloaded: return "overloaded";
    case errc::forbidden: return "forbidden";
    case errc::session_lost: return "session_lost";
    case errc::resume_pending: return "resume_pending";
  }
  return "unknown";
}

caf::error make_error(errc x) {
  return caf::error{static_cast<uint8_t>(x), error_category_atom};
}

caf::error make_error(errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), error_category_atom,
                    caf::make_message(std::move(what))};
}

namespace {

struct foreign_category {
  caf::atom_value category;
  std::string prefix;
  const char* (*name)(uint8_t);
};

std::mutex categories_mtx;
std::vector<foreign_category> categories;

} // namespace

void register_error_category(caf::atom_value category, std::string prefix,
                             const char* (*name)(uint8_t code)) {
  std::lock_guard<std::mutex> guard{categories_mtx};
  for (auto& x : categories)
    if (x.category == category) {
      x.prefix = std::move(prefix);
      x.name = name;
      return;
    }
  categories.push_back({category, std::move(prefix), name});
}

std::string describe(const caf::error& x) {
  if (!x)
    return "none";
  std::string result;
  if (x.category() == error_category_atom) {
    result = "relay.";
    result += to_string(static_cast<errc>(x.code()));
  } else {
    std::lock_guard<std::mutex> guard{categories_mtx};
    auto i = std::find_if(categories.begin(), categories.end(),
                          [&](auto& c) { return c.category == x.category(); });
    if (i == categories.end())
      return caf::to_string(x);
    result = i->prefix + "." + i->name(x.code());
  }
  const auto& ctx = x.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0)) {
    result += ": ";
    result += ctx.get_as<std::string>(0);
  }
  return result;
}

bool is(const caf::error& x, errc code) {
  return x.category() == error_category_atom
         && x.code() == static_cast<uint8_t>(code);
}

} // namespace relay
