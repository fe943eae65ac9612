// Every URI parser a configuration or a peer's input reaches: the endpoint
// split, and the uds, tcp, tls and mq address rules.

#include <cstddef>
#include <cstdint>
#include <string>

#include "mq/mq_queue.hpp"
#include "relay/transport.hpp"
#include "tcp/tcp_address.hpp"
#include "uds/uds_address.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto ep = relay::endpoint::parse(text);
  if (!ep)
    return 0;
  if (auto a = relay::uds_address::parse(*ep))
    static_cast<void>(a->uri());
  if (auto a = relay::mq::address::parse(*ep))
    static_cast<void>(a->up(1, "0123456789abcdef"));
  for (auto scheme : {"tcp", "tls"})
    if (auto a = relay::tcp_address::parse(*ep, scheme))
      static_cast<void>(a->uri());
  return 0;
}
