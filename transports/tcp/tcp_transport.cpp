#include "tcp/tcp_transport.hpp"

#include <utility>

#include <caf/make_config_option.hpp>

#include "tcp/tcp_address.hpp"
#include "tcp/tcp_connector.hpp"
#include "tcp/tcp_listener.hpp"
#include "tcp/tcp_socket.hpp"

namespace relay {

tcp_transport::tcp_transport(std::shared_ptr<reactor> io,
                             transport_options options)
  : io_(std::move(io)),
    options_(std::move(options)),
    layer_(std::make_shared<secret_layer>(options_)) {
  // nop
}

void tcp_transport::declare_options(const option_declarer& declare) {
  declare("relay.tcp")
    .add<bool>("insecure",
               "run tcp without authentication (trusted networks only)")
    .add<std::string>("source-address",
                      "numeric IP outgoing connections come from "
                      "(multi-homed hosts; default: the kernel's choice)");
}

std::string tcp_transport::scheme() const {
  return scheme_name;
}

caf::expected<std::unique_ptr<acceptor>>
tcp_transport::listen(const endpoint& ep, accept_callback on_accept) {
  auto addr = tcp_address::parse(ep);
  if (!addr)
    return addr.error();
  auto listener = tcp_listener::make(io_, *addr, options_, layer_,
                                     std::move(on_accept), rejected_);
  if (!listener)
    return listener.error();
  return std::unique_ptr<acceptor>{std::move(*listener)};
}

caf::expected<connection_ptr> tcp_transport::connect(const endpoint& ep) {
  auto addr = tcp_address::parse(ep);
  if (!addr)
    return addr.error();
  return tcp_connect(io_, *addr, options_, *layer_);
}

uint64_t tcp_transport::rejected_peers() const noexcept {
  return *rejected_;
}

} // namespace relay
