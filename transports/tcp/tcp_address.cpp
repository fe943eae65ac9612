#include "tcp/tcp_address.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include <cstring>

#include "relay/error.hpp"

namespace relay {

namespace {

caf::error bad_uri(const endpoint& ep, const std::string& scheme,
                   const std::string& why) {
  return make_error(errc::invalid_uri,
                    "'" + ep.text + "': " + why + " (expected " + scheme
                      + "://host:port, " + scheme + "://[v6]:port or "
                      + scheme + "://:port)");
}

} // namespace

caf::expected<tcp_address> tcp_address::parse(const endpoint& ep,
                                              const std::string& scheme) {
  auto bad = [&](const std::string& why) {
    return bad_uri(ep, scheme, why);
  };
  if (ep.scheme != scheme)
    return bad("not a " + scheme + " URI");
  if (ep.rest.compare(0, 2, "//") != 0)
    return bad("missing '//'");
  auto rest = ep.rest.substr(2);
  tcp_address result;
  result.scheme = scheme;
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos)
      return bad("unclosed '['");
    result.host = rest.substr(1, close - 1);
    if (result.host.empty())
      return bad("empty IPv6 address");
    if (close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad("missing ':port' after ']'");
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string::npos)
      return bad("missing ':port'");
    result.host = rest.substr(0, colon);
    if (result.host.find(':') != std::string::npos)
      return bad("an IPv6 address needs brackets");
    port = rest.substr(colon + 1);
  }
  if (result.host.find_first_of("/?#@ ") != std::string::npos)
    return bad("invalid character in the host");
  if (port.empty() || port.size() > 5
      || port.find_first_not_of("0123456789") != std::string::npos)
    return bad("the port must be a number from 0 to 65535");
  auto value = std::stoul(port);
  if (value > 65535)
    return bad("the port must be a number from 0 to 65535");
  result.port = static_cast<uint16_t>(value);
  return result;
}

std::string tcp_address::uri() const {
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + "://" + h + ":" + std::to_string(port);
}

std::string tcp_sockaddr::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET6) {
    auto& sa = reinterpret_cast<const sockaddr_in6&>(storage);
    ::inet_ntop(AF_INET6, &sa.sin6_addr, text, sizeof(text));
    return "[" + std::string{text} + "]:" + std::to_string(ntohs(sa.sin6_port));
  }
  auto& sa = reinterpret_cast<const sockaddr_in&>(storage);
  ::inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
  return std::string{text} + ":" + std::to_string(ntohs(sa.sin_port));
}

tcp_sockaddr tcp_sockaddr::local_of(int fd) {
  tcp_sockaddr result;
  result.length = sizeof(result.storage);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&result.storage),
                    &result.length) == 0)
    result.family = result.storage.ss_family;
  return result;
}

tcp_sockaddr tcp_sockaddr::peer_of(int fd) {
  tcp_sockaddr result;
  result.length = sizeof(result.storage);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&result.storage),
                    &result.length) == 0)
    result.family = result.storage.ss_family;
  return result;
}

caf::expected<std::vector<tcp_sockaddr>> resolve(const tcp_address& addr,
                                                 bool passive, errc code) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  auto host = addr.host.empty() ? std::string{"127.0.0.1"} : addr.host;
  auto port = std::to_string(addr.port);
  addrinfo* found = nullptr;
  if (auto rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
      rc != 0)
    return make_error(code, addr.uri() + ": host not found: "
                              + (rc == EAI_SYSTEM ? std::strerror(errno)
                                                  : ::gai_strerror(rc)));
  std::vector<tcp_sockaddr> result;
  for (auto* i = found; i != nullptr; i = i->ai_next) {
    if (i->ai_addrlen > sizeof(sockaddr_storage))
      continue;
    tcp_sockaddr x;
    std::memcpy(&x.storage, i->ai_addr, i->ai_addrlen);
    x.length = i->ai_addrlen;
    x.family = i->ai_family;
    result.push_back(x);
  }
  ::freeaddrinfo(found);
  if (result.empty())
    return make_error(code, addr.uri() + ": host not found: no address");
  return result;
}

} // namespace relay
