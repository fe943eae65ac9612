#include "tls/tls_transport.hpp"

#include <utility>

#include <caf/make_config_option.hpp>

#include "tcp/tcp_address.hpp"
#include "tcp/tcp_connector.hpp"
#include "tcp/tcp_listener.hpp"

namespace relay {

tls_transport::tls_transport(std::shared_ptr<reactor> io,
                             transport_options options)
  : io_(std::move(io)),
    options_(std::move(options)),
    layer_(std::make_shared<tls_layer>(options_)) {
  // nop
}

void tls_transport::declare_options(const option_declarer& declare) {
  declare("relay.tls")
    .add<std::string>("ca-file",
                      "PEM file of the CA certificates that sign peers")
    .add<std::string>("cert-file", "PEM file of this node's certificate")
    .add<std::string>("key-file",
                      "PEM file of this node's private key (mode 0600)")
    .add<std::string>("peer-name",
                      "DNS name every peer's certificate must carry "
                      "(optional pin)");
}

std::string tls_transport::scheme() const {
  return scheme_name;
}

caf::expected<std::unique_ptr<acceptor>>
tls_transport::listen(const endpoint& ep, accept_callback on_accept) {
  auto addr = tcp_address::parse(ep, scheme_name);
  if (!addr)
    return addr.error();
  auto listener = tcp_listener::make(io_, *addr, options_, layer_,
                                     std::move(on_accept), rejected_);
  if (!listener)
    return listener.error();
  return std::unique_ptr<acceptor>{std::move(*listener)};
}

caf::expected<connection_ptr> tls_transport::connect(const endpoint& ep) {
  auto addr = tcp_address::parse(ep, scheme_name);
  if (!addr)
    return addr.error();
  return tcp_connect(io_, *addr, options_, *layer_);
}

uint64_t tls_transport::rejected_peers() const noexcept {
  return *rejected_;
}

} // namespace relay
