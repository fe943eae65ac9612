// The tcp authentication state machine (tcp_auth.hpp) of either role, fed
// what a hostile peer sends: the first byte picks the role and whether a
// channel binding is used; the rest is fed in pieces no larger than the
// machine asks for, as the transports feed it.
//
// Seeds: fuzz/corpus/tcp_auth (fuzz/make_seeds.py).

#include <cstddef>
#include <cstdint>

#include "tcp/tcp_auth.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  using namespace relay::tcp_auth;
  auto self = (data[0] & 1) != 0 ? role::client : role::server;
  std::vector<uint8_t> binding;
  if ((data[0] & 2) != 0)
    binding.assign(32, 0x5a);
  auto secret = (data[0] & 4) != 0 ? std::string{}
                                   : std::string{"fuzz-secret-0123456789"};
  handshake hs{self, secret, "fuzz", binding};
  size_t pos = 1;
  while (pos < size && hs.wanted() > 0) {
    auto n = std::min(hs.wanted(), size - pos);
    hs.feed(data + pos, n);
    pos += n;
    hs.output().clear();
  }
  return 0;
}
