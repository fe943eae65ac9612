// The one place that lists the transports built into Relay. Adding a
// transport adds one line to `builtins` below.
#include "relay/transport.hpp"

#include <type_traits>

#include "common/reactor.hpp"
#include "fd/fd_transport.hpp"
#include "mq/mq_transport.hpp"
#include "pipe/pipe_transport.hpp"
#include "shm/shm_transport.hpp"
#include "tcp/tcp_transport.hpp"
#include "tls/tls_transport.hpp"
#include "uds/uds_transport.hpp"

namespace relay {

namespace {

template <class T, class = void>
struct has_options : std::false_type {};

template <class T>
struct has_options<T, std::void_t<decltype(T::declare_options(
                        std::declval<const option_declarer&>()))>>
  : std::true_type {};

/// A transport's entry: how to declare its options and how to make it.
struct builtin {
  void (*declare_options)(const option_declarer&);
  std::unique_ptr<transport> (*make)(std::shared_ptr<reactor>,
                                     const transport_options&);

  template <class Transport>
  static builtin of() {
    builtin result{nullptr, nullptr};
    if constexpr (has_options<Transport>::value)
      result.declare_options = &Transport::declare_options;
    result.make = [](std::shared_ptr<reactor> io,
                     const transport_options& options)
      -> std::unique_ptr<transport> {
      return std::make_unique<Transport>(std::move(io), options);
    };
    return result;
  }
};

const builtin builtins[] = {
  builtin::of<uds_transport>(),
  builtin::of<tcp_transport>(),
  builtin::of<tls_transport>(),
  builtin::of<shm_transport>(),
  builtin::of<fd_transport>(),
  builtin::of<pipe_transport>(),
  builtin::of<mq_transport>(),
};

} // namespace

void register_builtin_transports(transport_registry& registry,
                                 const transport_options& options) {
  auto io = std::make_shared<reactor>();
  for (auto& b : builtins)
    registry.add(b.make(io, options));
}

void declare_builtin_transport_options(const option_declarer& declare) {
  for (auto& b : builtins)
    if (b.declare_options != nullptr)
      b.declare_options(declare);
}

} // namespace relay
