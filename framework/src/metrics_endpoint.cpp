// metrics_endpoint: the HTTP server of relay.metrics.listen (metrics.hpp):
// /metrics, the observer page and its /api routes, on cpp-httplib.

#include "metrics.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <httplib.h>

#include "relay/log.hpp"
#include "relay/node_config.hpp"

namespace relay {

namespace {

using json = nlohmann::json;

/// Splits "HOST:PORT" or "[V6]:PORT".
std::pair<std::string, int> split_address(const std::string& listen) {
  auto bad = [&](const std::string& why) {
    return config_error("relay.metrics.listen '" + listen + "': " + why
                        + " (expected HOST:PORT, e.g. 127.0.0.1:9464)");
  };
  std::string host;
  std::string port;
  if (!listen.empty() && listen.front() == '[') {
    auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size()
        || listen[close + 1] != ':')
      throw bad("malformed IPv6 address");
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    if (listen.find("://") != std::string::npos)
      throw bad("an address, not a URL");
    auto colon = listen.rfind(':');
    if (colon == std::string::npos)
      throw bad("no port");
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.find(':') != std::string::npos)
      throw bad("an IPv6 address needs brackets");
  }
  if (host.empty())
    throw bad("no host");
  if (port.empty() || port.size() > 5
      || port.find_first_not_of("0123456789") != std::string::npos
      || std::stoi(port) > 65535)
    throw bad("the port must be a number from 0 to 65535");
  return {host, std::stoi(port)};
}


} // namespace

bool metrics_endpoint::loopback(const std::string& host) {
  if (host == "localhost")
    return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1
         && IN6_IS_ADDR_LOOPBACK(&v6);
}

/// Why `host`:`port` cannot be bound, found by trying once more by hand
/// (httplib says only that it failed).
static std::string why_not_bindable(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
      rc != 0)
    return std::string{"cannot resolve the host: "} + ::gai_strerror(rc);
  std::string why = "unknown";
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::strerror(errno);
  } else {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0)
      why = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return why;
}

/// The host part of a Host header: "127.0.0.1:9464" -> "127.0.0.1",
/// "[::1]:9464" -> "::1".
static std::string host_of(const std::string& header) {
  if (!header.empty() && header.front() == '[') {
    auto close = header.find(']');
    return close == std::string::npos ? header : header.substr(1, close - 1);
  }
  return header.substr(0, header.find(':'));
}

metrics_endpoint::metrics_endpoint(const std::string& listen, ask_function ask)
  : server_(std::make_unique<httplib::Server>()) {
  auto [host, port] = split_address(listen);
  // One worker: requests are rare and each blocks on the node's answer.
  // A connection serves one request and waits at most 5 s for it, so a
  // client that connects and stays silent holds the worker that long.
  server_->new_task_queue = [] { return new httplib::ThreadPool(1); };
  server_->set_keep_alive_max_count(1);
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(5, 0);
  // Not httplib's default SO_REUSEPORT, which lets a second process bind
  // the same port and take some of the requests: a port in use is an error.
  server_->set_socket_options([](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  if (loopback(host))
    server_->set_pre_routing_handler(
      [](const httplib::Request& req, httplib::Response& res) {
        if (loopback(host_of(req.get_header_value("Host"))))
          return httplib::Server::HandlerResponse::Unhandled;
        res.status = 403;
        res.set_content("this endpoint is bound to loopback and answers "
                        "only requests for Host localhost, 127.0.0.1 or "
                        "[::1] (against DNS rebinding); a proxy in front of "
                        "it must send one of these\n",
                        "text/plain");
        return httplib::Server::HandlerResponse::Handled;
      });
  server_->Get("/metrics", [ask](const httplib::Request&,
                                 httplib::Response& res) {
    auto [status, body] = ask("metrics");
    if (status == 200) {
      try {
        body = json::parse(body).at("text").get<std::string>();
      } catch (const std::exception& ex) {
        status = 500;
        body = std::string{"bad metrics document: "} + ex.what() + "\n";
      }
    }
    res.status = status;
    res.set_content(body, status == 200
                            ? "text/plain; version=0.0.4; charset=utf-8"
                            : "text/plain; charset=utf-8");
  });
  server_->Get("/api/(node|tree|names|stats)",
               [ask](const httplib::Request& req, httplib::Response& res) {
                 auto [status, body] = ask(req.matches[1]);
                 res.status = status;
                 res.set_header("Cache-Control", "no-store");
                 res.set_content(body, status == 200
                                         ? "application/json"
                                         : "text/plain; charset=utf-8");
               });
  server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    // Inline script and style only, and fetches to this origin only.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; "
                   "style-src 'unsafe-inline'; connect-src 'self'; "
                   "frame-ancestors 'none'");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-store");
    res.set_content(observer_page(), "text/html; charset=utf-8");
  });
  int bound = port == 0 ? server_->bind_to_any_port(host)
                        : (server_->bind_to_port(host, port) ? port : -1);
  if (bound < 0)
    throw config_error("relay.metrics.listen '" + listen
                       + "': cannot bind: " + why_not_bindable(host, port));
  address_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host)
             + ":" + std::to_string(bound);
  if (!loopback(host))
    log(log_level::warning,
        "metrics endpoint on " + address_
          + ", which is not a loopback address: anyone who reaches it reads "
            "this node's names and traffic");
  auto ended = std::make_shared<std::atomic<bool>>(false);
  thread_ = std::thread{[this, ended] {
    server_->listen_after_bind();
    *ended = true;
  }};
  // httplib's stop() does nothing before the server runs: wait until it
  // runs (or failed at once), so that a node destroyed at once still stops
  // its endpoint.
  while (!server_->is_running() && !*ended)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  if (*ended) {
    thread_.join();
    throw config_error("relay.metrics.listen '" + listen
                       + "': the HTTP server did not start");
  }
}

metrics_endpoint::~metrics_endpoint() {
  server_->stop();
  if (thread_.joinable())
    thread_.join();
}

} // namespace relay

