#include "relay/transport.hpp"

#include <algorithm>

#include "relay/error.hpp"

namespace relay {

connection_handler::~connection_handler() = default;

void connection_handler::on_frames_end(connection&) {
  // nop
}

connection::~connection() = default;
acceptor::~acceptor() = default;
transport::~transport() = default;

connection::traffic_counters connection::traffic() const noexcept {
  return {};
}

uint64_t connection::unsent_frames() const noexcept {
  return 0;
}

caf::error connection::send_copy(const frame_buffer& frame) {
  return send(frame_buffer{frame});
}

void connection::allow_bulk() {
  // nop: see the declaration
}

void connection::linger_on_close() {
  // nop: see the declaration
}

bool connection::pause_reading(bool) {
  return false; // see the declaration
}

uint64_t transport::rejected_peers() const noexcept {
  return 0;
}

bool transport::can_redial() const noexcept {
  return false;
}

caf::expected<endpoint> endpoint::parse(const std::string& uri) {
  auto colon = uri.find(':');
  if (colon == std::string::npos || colon == 0)
    return make_error(errc::invalid_uri,
                      "'" + uri + "' has no scheme (expected scheme:address)");
  auto scheme = uri.substr(0, colon);
  auto valid = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+'
           || c == '-' || c == '.';
  };
  if (!std::all_of(scheme.begin(), scheme.end(), valid))
    return make_error(errc::invalid_uri,
                      "'" + uri + "' has an invalid scheme '" + scheme + "'");
  auto rest = uri.substr(colon + 1);
  if (rest.empty())
    return make_error(errc::invalid_uri, "'" + uri + "' has no address");
  return endpoint{std::move(scheme), std::move(rest), uri};
}

std::string frame_header::check_framing(uint32_t max_body) const {
  if (magic != magic_value) {
    char buf[64];
    snprintf(buf, sizeof(buf), "bad magic 0x%08x", static_cast<unsigned>(magic));
    return buf;
  }
  if (length > max_body)
    return "frame of " + std::to_string(length) + " bytes exceeds the bound of "
           + std::to_string(max_body) + " bytes";
  return {};
}

caf::error transport_registry::add(std::unique_ptr<transport> t) {
  if (!t)
    return make_error(errc::invalid_argument, "null transport");
  if (find(t->scheme()) != nullptr)
    return make_error(errc::already_registered,
                      "a transport for scheme '" + t->scheme()
                        + "' is already registered");
  transports_.push_back(std::move(t));
  return caf::none;
}

transport* transport_registry::find(const std::string& scheme) const {
  for (auto& t : transports_)
    if (t->scheme() == scheme)
      return t.get();
  return nullptr;
}

uint64_t transport_registry::rejected_peers() const noexcept {
  uint64_t result = 0;
  for (auto& t : transports_)
    result += t->rejected_peers();
  return result;
}

std::vector<std::string> transport_registry::schemes() const {
  std::vector<std::string> result;
  for (auto& t : transports_)
    result.push_back(t->scheme());
  return result;
}

} // namespace relay
