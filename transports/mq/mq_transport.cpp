#include "mq/mq_transport.hpp"

#include <mqueue.h>
#include <poll.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <utility>
#include <vector>

#include <caf/make_config_option.hpp>

#include "common/stream_connection.hpp"
#include "mq/mq_channel.hpp"
#include "mq/mq_listener.hpp"

namespace relay {

namespace {

using std::chrono::steady_clock;

// Receives one message of at most `size` bytes, waiting until `deadline`.
// Returns bytes received, or -1 with errno (ETIMEDOUT at the deadline).
ssize_t receive_until(int fd, char* buf, size_t size,
                      steady_clock::time_point deadline) {
  for (;;) {
    unsigned prio = 0;
    auto n = ::mq_receive(fd, buf, size, &prio);
    if (n >= 0 || (errno != EAGAIN && errno != EINTR))
      return n;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - steady_clock::now());
    if (left.count() <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, poll_timeout(left));
  }
}

// Sends one message, waiting for room until `deadline`: 0 or the errno
// (ETIMEDOUT at the deadline).
int send_until(int fd, const void* data, size_t len,
               steady_clock::time_point deadline) {
  for (;;) {
    if (::mq_send(fd, static_cast<const char*>(data), len, 0) == 0)
      return 0;
    if (errno != EAGAIN && errno != EINTR)
      return errno;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - steady_clock::now());
    if (left.count() <= 0)
      return ETIMEDOUT;
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, poll_timeout(left));
  }
}

} // namespace

caf::expected<mq_transport::settings>
mq_transport::settings::read(const transport_options& options) {
  settings result;
  auto& g = result.geometry;
  if (options.settings != nullptr) {
    g.message_size = static_cast<long>(caf::get_or(
      *options.settings, "relay.mq.message-size", size_t{8192}));
    g.depth = static_cast<long>(
      caf::get_or(*options.settings, "relay.mq.max-messages", size_t{10}));
  }
  if (g.message_size < mq::min_message_size
      || g.message_size > mq::max_message_size)
    return make_error(errc::invalid_argument,
                      "relay.mq.message-size " + std::to_string(g.message_size)
                        + " is outside [128, 1048576]");
  if (g.depth < 1 || g.depth > mq::max_depth)
    return make_error(errc::invalid_argument,
                      "relay.mq.max-messages " + std::to_string(g.depth)
                        + " is outside [1, 65536]");
  return result;
}

void mq_transport::declare_options(const option_declarer& declare) {
  declare("relay.mq")
    .add<size_t>("message-size",
                 "bytes per POSIX queue message (128 to 1 MiB; 8192)")
    .add<size_t>("max-messages", "messages each mq queue holds (10)");
}

mq_transport::mq_transport(std::shared_ptr<reactor> io,
                           transport_options options)
  : io_(std::move(io)),
    options_(std::move(options)),
    settings_(settings::read(options_)) {
  // nop
}

std::string mq_transport::scheme() const {
  return scheme_name;
}

caf::expected<std::unique_ptr<acceptor>>
mq_transport::listen(const endpoint& ep, accept_callback on_accept) {
  if (!on_accept)
    return make_error(errc::invalid_argument,
                      ep.text + ": listen needs an accept callback");
  auto addr = mq::address::parse(ep);
  if (!addr)
    return addr.error();
  if (!settings_)
    return settings_.error();
  return mq_listen(io_, *addr, options_, std::move(on_accept), rejected_);
}

caf::expected<mq_client> mq_connect_channel(const mq::address& addr,
                                            mq::geometry geometry,
                                            const transport_options& options,
                                            std::weak_ptr<reactor> io) {
  auto uri = addr.uri();
  auto deadline = steady_clock::now() + options.handshake_timeout;
  // The listener's queue: ours, and alive.
  auto raw = ::mq_open(addr.name.c_str(), O_WRONLY | O_NONBLOCK);
  if (raw < 0) {
    auto err = errno;
    if (err == ENOENT)
      return make_error(errc::connect_failed,
                        uri + ": nobody listens (no message queue "
                          + addr.name + ")");
    if (err == EACCES)
      return make_error(errc::peer_rejected,
                        uri + ": message queue " + addr.name
                          + " belongs to another user");
    return make_errno_error(errc::connect_failed, uri, err,
                            "opening message queue " + addr.name);
  }
  unique_fd accept_queue{raw};
  if (auto why = mq::check_queue(raw, true); !why.empty())
    return make_error(errc::peer_rejected,
                      uri + ": message queue " + addr.name + " is " + why);
  if (::flock(raw, LOCK_SH | LOCK_NB) == 0)
    return make_error(errc::connect_failed,
                      uri + ": nobody listens (message queue " + addr.name
                        + " is left from a listener that exited)");
  // Room for the request first, so that the pair below exists only for
  // the moment between its creation and the request (a crash then leaves
  // its names behind; see docs/mq.md).
  {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - steady_clock::now());
    pollfd p{raw, POLLOUT, 0};
    if (::poll(&p, 1, poll_timeout(left)) == 0)
      return make_error(errc::handshake_timeout,
                        uri + ": the listener's accept queue stayed full");
  }
  // Our pair. Whatever happens, the names go when we return: on success
  // the listener has unlinked them already.
  auto pid = static_cast<uint32_t>(::getpid());
  auto token = mq::random_token();
  auto up_name = addr.up(pid, token);
  auto down_name = addr.down(pid, token);
  auto up = mq::create_queue(up_name, geometry, false,
                             errc::connect_failed, uri);
  if (!up)
    return up.error();
  struct unlink_guard {
    std::string up, down;
    ~unlink_guard() {
      mq::unlink_queue(up);
      mq::unlink_queue(down);
    }
  } guard{up_name, down_name};
  auto down = mq::create_queue(down_name, geometry, true,
                               errc::connect_failed, uri);
  if (!down)
    return down.error();
  uint8_t req[mq::request_size];
  mq::write_request({pid, token}, req);
  if (auto err = send_until(raw, req, sizeof(req), deadline); err != 0) {
    if (err == ETIMEDOUT)
      return make_error(errc::handshake_timeout,
                        uri + ": the listener's accept queue stayed full");
    return make_errno_error(errc::connect_failed, uri, err,
                            "sending the connection request");
  }
  std::vector<char> buf(static_cast<size_t>(geometry.message_size));
  auto n = receive_until(down->get(), buf.data(), buf.size(), deadline);
  if (n < 0) {
    if (errno == ETIMEDOUT)
      return make_error(errc::handshake_timeout,
                        uri + ": the listener did not answer in time");
    return make_errno_error(errc::connect_failed, uri, errno,
                            "receiving the answer");
  }
  mq::reply rep;
  if (auto why = mq::read_reply(reinterpret_cast<const uint8_t*>(buf.data()),
                                static_cast<size_t>(n), rep);
      !why.empty())
    return make_error(why.find("version") != std::string::npos
                        ? errc::version_mismatch
                        : errc::handshake_failed,
                      uri + ": " + why);
  if (!rep.accepted)
    return make_error(errc::peer_rejected,
                      uri + ": the listener refused the connection (its log "
                            "says why)");
  auto who = uri + " (pid " + std::to_string(rep.pid) + ")";
  // Accepted: a failure from here on ends the listener's side at once (an
  // empty message) instead of leaving it to the heartbeat.
  auto give_up = [&](caf::error err) {
    ::mq_send(up->get(), "", 0, 0);
    return err;
  };
  unique_fd peer;
  if (rep.pid != pid) {
    peer = mq::open_pidfd(static_cast<pid_t>(rep.pid));
    if (!peer)
      return give_up(make_errno_error(errc::connect_failed, who, errno,
                                      "watching the listener's process "
                                      "(pidfd_open, Linux 5.3 or later)"));
  }
  unique_fd end_to{::dup(up->get())};
  auto chan = mq_channel::make(std::move(*down), std::move(*up),
                               std::move(peer), std::move(io), who);
  if (!chan) {
    ::mq_send(end_to.get(), "", 0, 0);
    return chan.error();
  }
  return mq_client{std::move(*chan), who};
}

caf::expected<connection_ptr> mq_transport::connect(const endpoint& ep) {
  auto addr = mq::address::parse(ep);
  if (!addr)
    return addr.error();
  if (!settings_)
    return settings_.error();
  auto client = mq_connect_channel(*addr, settings_->geometry, options_, io_);
  if (!client)
    return client.error();
  return stream_connection::make(io_, std::move(client->channel),
                                 std::move(client->name), options_);
}

uint64_t mq_transport::rejected_peers() const noexcept {
  return *rejected_;
}

} // namespace relay
