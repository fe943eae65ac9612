#include "tcp/tcp_layer.hpp"

#include <exception>

#include "common/transport_log.hpp"
#include "relay/error.hpp"
#include "tcp/tcp_auth.hpp"
#include "tcp/tcp_socket.hpp"

namespace relay {

tcp_layer::~tcp_layer() = default;

caf::error secret_layer::prepare(const std::string& uri) {
  auto secret = tcp_secret(options_, uri);
  return secret ? caf::none : secret.error();
}

void secret_layer::listening(const std::string& uri) {
  if (options_.secret.empty())
    transport_log(uri + ": listening WITHOUT authentication "
                        "(relay.tcp.insecure): anyone who can reach this "
                        "port can talk to this node");
}

caf::expected<tcp_layer::server_setup>
secret_layer::accept(const std::string& peer) {
  auto secret = tcp_secret(options_, peer);
  if (!secret)
    return secret.error();
  std::shared_ptr<tcp_auth::handshake> hs;
  try {
    hs = std::make_shared<tcp_auth::handshake>(tcp_auth::role::server,
                                               std::move(*secret), peer);
  } catch (std::exception& ex) { // libcrypto failed
    return make_error(errc::peer_rejected, peer + ": " + ex.what());
  }
  server_setup result;
  result.step = [hs, peer](int fd) {
    socket_handshake_io io{fd};
    return auth_step(io, *hs, peer);
  };
  result.finish = [](unique_fd fd) -> std::unique_ptr<byte_channel> {
    return std::make_unique<socket_channel>(std::move(fd));
  };
  return result;
}

caf::expected<std::unique_ptr<byte_channel>>
secret_layer::connect(unique_fd fd,
                      std::chrono::steady_clock::time_point deadline,
                      const std::string& who) {
  auto secret = tcp_secret(options_, who);
  if (!secret)
    return secret.error();
  try {
    tcp_auth::handshake hs{tcp_auth::role::client, std::move(*secret), who};
    if (auto err = run_handshake(fd.get(), hs, deadline, who))
      return err;
  } catch (std::exception& ex) { // libcrypto failed
    return make_error(errc::connect_failed, who + ": " + ex.what());
  }
  return std::unique_ptr<byte_channel>{
    std::make_unique<socket_channel>(std::move(fd))};
}

} // namespace relay
