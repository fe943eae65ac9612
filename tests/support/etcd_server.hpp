#pragma once

// A real etcd-server (Debian's etcd 3.4) for tests: started on free
// loopback ports in a temporary data directory, ready when it says so in
// its log, stopped and removed on destruction.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "child_process.hpp"

namespace relay::test {

class etcd_server {
public:
  etcd_server() {
    char tmpl[] = "/tmp/relay-etcd-XXXXXX";
    if (mkdtemp(tmpl) == nullptr)
      throw std::runtime_error("etcd_server: mkdtemp failed");
    dir_ = tmpl;
    auto client = free_port();
    auto peer = free_port();
    url_ = "http://127.0.0.1:" + std::to_string(client);
    auto peer_url = "http://127.0.0.1:" + std::to_string(peer);
    proc_ = std::make_unique<child>(
      std::vector<std::string>{
        "/usr/bin/etcd", "--name", "relay-test", "--data-dir", dir_ + "/data",
        "--listen-client-urls", url_, "--advertise-client-urls", url_,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls",
        peer_url, "--initial-cluster", "relay-test=" + peer_url},
      true);
    // Ready when it says so (bounded); its log is the event to wait on.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
    while (std::chrono::steady_clock::now() < deadline) {
      auto line = proc_->read_line(std::chrono::seconds{30});
      if (!line)
        break;
      if (line->find("ready to serve client requests") != std::string::npos)
        return;
    }
    throw std::runtime_error("etcd did not become ready within 30 s");
  }

  ~etcd_server() {
    if (proc_)
      proc_->stop(SIGTERM, std::chrono::seconds{10});
    proc_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  etcd_server(const etcd_server&) = delete;
  etcd_server& operator=(const etcd_server&) = delete;

  /// "http://127.0.0.1:<port>".
  const std::string& url() const {
    return url_;
  }

  static bool available() {
    return access("/usr/bin/etcd", X_OK) == 0;
  }

private:
  // A port nobody listens on now (the kernel's choice; released at once).
  static uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    socklen_t len = sizeof(sa);
    getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    ::close(fd);
    return ntohs(sa.sin_port);
  }

  std::string dir_;
  std::string url_;
  std::unique_ptr<child> proc_;
};

} // namespace relay::test
