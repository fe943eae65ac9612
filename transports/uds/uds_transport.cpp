#include "uds/uds_transport.hpp"

#include <utility>

#include "uds/uds_address.hpp"
#include "uds/uds_connector.hpp"
#include "uds/uds_listener.hpp"

namespace relay {

uds_transport::uds_transport(std::shared_ptr<reactor> io,
                             transport_options options)
  : io_(std::move(io)), options_(options) {
  // nop
}

std::string uds_transport::scheme() const {
  return scheme_name;
}

caf::expected<std::unique_ptr<acceptor>>
uds_transport::listen(const endpoint& ep, accept_callback on_accept) {
  auto addr = uds_address::parse(ep);
  if (!addr)
    return addr.error();
  auto listener = uds_listener::make_stream(io_, *addr, options_,
                                           std::move(on_accept), rejected_);
  if (!listener)
    return listener.error();
  return std::unique_ptr<acceptor>{std::move(*listener)};
}

uint64_t uds_transport::rejected_peers() const noexcept {
  return *rejected_;
}

caf::expected<connection_ptr> uds_transport::connect(const endpoint& ep) {
  auto addr = uds_address::parse(ep);
  if (!addr)
    return addr.error();
  return uds_connect(io_, *addr, options_);
}

} // namespace relay
