#pragma once

#include <memory>

#include <caf/expected.hpp>

#include "common/reactor.hpp"
#include "common/transport_log.hpp"
#include "mq/mq_queue.hpp"
#include "relay/transport.hpp"

namespace relay {

/// The listener's side of the mq rendezvous (mq_queue.hpp, docs/mq.md):
/// creates the accept queue `addr` (or takes over one whose listener died),
/// locks it, and serves requests on `io`'s thread: checks each, opens and
/// unlinks the client's pair, answers, and hands each connection, not yet
/// started, to `on_accept`. Refusals are logged and counted in `rejected`.
/// The acceptor unlinks the queue when destroyed, if the name is still its
/// own. Errors (errc::listen_failed naming the URI): a live listener holds
/// the name, it belongs to another user or is open to others, mq_open
/// refused (the limit named). Thread-safe.
caf::expected<std::unique_ptr<acceptor>>
mq_listen(const std::shared_ptr<reactor>& io, const mq::address& addr,
          const transport_options& options, accept_callback on_accept,
          rejection_counter rejected);

} // namespace relay
