#include "shm/shm_transport.hpp"

#include <chrono>
#include <utility>

#include <caf/make_config_option.hpp>

#include "common/setup_session.hpp"
#include "common/stream_connection.hpp"
#include "shm/shm_channel.hpp"
#include "shm/shm_setup.hpp"
#include "uds/uds_address.hpp"
#include "uds/uds_connector.hpp"
#include "uds/uds_listener.hpp"

namespace relay {

namespace {

// Rings: 0 carries client -> server, 1 server -> client.
constexpr int client_to_server = 0;
constexpr int server_to_client = 1;

std::unique_ptr<byte_channel> make_channel(shm_setup::result r, bool server,
                                           unique_fd socket,
                                           std::chrono::nanoseconds spin) {
  return std::make_unique<shm_channel>(
    std::move(r.map), r.capacity, server ? client_to_server : server_to_client,
    server ? server_to_client : client_to_server, std::move(socket),
    spin);
}

std::string shm_uri(const uds_address& addr) {
  return "shm://" + addr.uri().substr(std::string{"uds://"}.size());
}

// The rendezvous listener plus the set-ups in progress.
class shm_listener : public acceptor {
public:
  shm_listener(std::unique_ptr<uds_listener> rendezvous,
               std::shared_ptr<setup_sessions> sessions, std::string uri)
    : rendezvous_(std::move(rendezvous)),
      sessions_(std::move(sessions)),
      uri_(std::move(uri)) {
    // nop
  }

  ~shm_listener() override {
    rendezvous_.reset(); // no new set-ups
    sessions_->stop();
  }

  std::string uri() const override {
    return uri_;
  }

private:
  std::unique_ptr<uds_listener> rendezvous_;
  std::shared_ptr<setup_sessions> sessions_;
  std::string uri_;
};

} // namespace

shm_transport::settings
shm_transport::settings::read(const transport_options& options) {
  settings result;
  if (options.settings != nullptr) {
    result.ring_size = caf::get_or(*options.settings, "relay.shm.ring-size",
                                   result.ring_size);
    result.spin = caf::get_or(*options.settings, "relay.shm.spin",
                              caf::timespan{result.spin});
  }
  return result;
}

void shm_transport::declare_options(const option_declarer& declare) {
  declare("relay.shm")
    .add<size_t>("ring-size",
                 "bytes of each shm ring (power of two, 4 KiB to 256 MiB)")
    .add<caf::timespan>("spin", "how long an shm reader spins before it sleeps");
}

shm_transport::shm_transport(std::shared_ptr<reactor> io,
                             transport_options options)
  : io_(std::move(io)),
    options_(std::move(options)),
    settings_(settings::read(options_)) {
  // nop
}

std::string shm_transport::scheme() const {
  return scheme_name;
}

caf::expected<std::unique_ptr<acceptor>>
shm_transport::listen(const endpoint& ep, accept_callback on_accept) {
  if (!on_accept)
    return make_error(errc::invalid_argument,
                      ep.text + ": listen needs an accept callback");
  auto addr = uds_address::parse(endpoint{"uds", ep.rest, ep.text});
  if (!addr)
    return addr.error();
  auto uri = shm_uri(*addr);
  auto sessions = std::make_shared<setup_sessions>(
    io_, uri, "a connection in shared memory set-up",
    options_.handshake_timeout, rejected_);
  std::weak_ptr<reactor> weak_io = io_;
  auto options = options_;
  auto spin = settings_.spin;
  auto on_socket = [weak_io, sessions, options, spin, on_accept,
                    uri](unique_fd fd, std::string peer) {
    auto state = std::make_shared<shm_setup::result>();
    auto name = uri + " " + peer.substr(peer.find(" (") + 1);
    sessions->start(
      std::move(fd), name,
      [state, name](int sock) { return shm_setup::server_step(sock, *state, name); },
      [weak_io, state, options, spin, on_accept, name](unique_fd sock) {
        auto io = weak_io.lock();
        if (!io)
          return;
        on_accept(stream_connection::make(
          io, make_channel(std::move(*state), true, std::move(sock), spin),
          name, options));
      });
  };
  auto rendezvous = uds_listener::make(io_, *addr, options_, on_socket,
                                       rejected_);
  if (!rendezvous)
    return rendezvous.error();
  return std::unique_ptr<acceptor>{
    new shm_listener(std::move(*rendezvous), std::move(sessions), uri)};
}

caf::expected<connection_ptr> shm_transport::connect(const endpoint& ep) {
  auto addr = uds_address::parse(endpoint{"uds", ep.rest, ep.text});
  if (!addr)
    return addr.error();
  auto uri = shm_uri(*addr);
  auto sock = uds_connect_socket(*addr, options_);
  if (!sock)
    return sock.error();
  auto name = uri + " " + sock->peer.substr(sock->peer.find(" (") + 1);
  auto setup = shm_setup::run_client(
    sock->fd.get(), settings_.ring_size,
    std::chrono::steady_clock::now() + options_.handshake_timeout, name);
  if (!setup)
    return setup.error();
  return stream_connection::make(
    io_, make_channel(std::move(*setup), false, std::move(sock->fd),
                      settings_.spin),
    name, options_);
}

uint64_t shm_transport::rejected_peers() const noexcept {
  return *rejected_;
}

} // namespace relay
