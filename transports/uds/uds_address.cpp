#include "uds/uds_address.hpp"

#include <cstring>

#include "relay/error.hpp"

namespace relay {

namespace {

caf::error bad_uri(const endpoint& ep, const std::string& why) {
  return make_error(errc::invalid_uri, "'" + ep.text + "': " + why
                                         + " (expected uds:///absolute/path"
                                           " or uds:@name)");
}

} // namespace

caf::expected<uds_address> uds_address::parse(const endpoint& ep) {
  if (ep.scheme != "uds")
    return bad_uri(ep, "scheme is '" + ep.scheme + "', not 'uds'");
  const auto& rest = ep.rest;
  if (rest.find('\0') != std::string::npos)
    return bad_uri(ep, "contains a NUL byte");
  uds_address result;
  if (!rest.empty() && rest[0] == '@') {
    result.abstract = true;
    result.name = rest.substr(1);
    if (result.name.empty())
      return bad_uri(ep, "empty abstract socket name");
  } else if (rest.compare(0, 3, "///") == 0) {
    result.name = rest.substr(2);
    if (result.name.size() > 1 && result.name[1] == '/')
      return bad_uri(ep, "path must not start with '//'");
  } else if (rest.compare(0, 2, "//") == 0) {
    return bad_uri(ep, "a host part is not supported");
  } else if (rest.empty() || rest == "/") {
    return bad_uri(ep, "empty path");
  } else {
    return bad_uri(ep, rest[0] == '/' ? "path must follow '//' (uds:///path)"
                                      : "relative path '" + rest + "'");
  }
  if (!result.abstract && result.name.size() <= 1)
    return bad_uri(ep, "empty path");
  if (!result.abstract && result.name.back() == '/')
    return bad_uri(ep, "path names a directory");
  if (result.name.size() > max_length)
    return bad_uri(ep, std::string{result.abstract ? "name" : "path"} + " of "
                         + std::to_string(result.name.size())
                         + " bytes exceeds the limit of "
                         + std::to_string(max_length) + " bytes");
  return result;
}

std::string uds_address::uri() const {
  return abstract ? "uds:@" + name : "uds://" + name;
}

socklen_t uds_address::to_sockaddr(sockaddr_un& out) const noexcept {
  std::memset(&out, 0, sizeof(out));
  out.sun_family = AF_UNIX;
  auto base = offsetof(sockaddr_un, sun_path);
  if (abstract) {
    // Leading NUL, then the name; the length excludes any trailing bytes.
    std::memcpy(out.sun_path + 1, name.data(), name.size());
    return static_cast<socklen_t>(base + 1 + name.size());
  }
  std::memcpy(out.sun_path, name.data(), name.size());
  return static_cast<socklen_t>(base + name.size() + 1);
}

} // namespace relay
