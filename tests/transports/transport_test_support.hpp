#pragma once

// What the transport tests share: frames, a handler that records what a
// connection reports, a queue of accepted connections. Every wait is bounded.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <sys/socket.h>

#include <gtest/gtest.h>

#include "common/reactor.hpp"
#include "relay/error.hpp"
#include "relay/transport.hpp"

namespace relay::test {

using namespace std::chrono_literals;

inline constexpr auto wait_bound = 20s;

inline frame_buffer make_frame(frame_kind kind, const void* body, size_t len) {
  frame_buffer buf(frame_header::size + len);
  frame_header header;
  header.kind = kind;
  header.length = static_cast<uint32_t>(len);
  header.write(buf.data());
  if (len > 0)
    std::memcpy(buf.data() + frame_header::size, body, len);
  return buf;
}

inline frame_buffer make_frame(const std::string& text,
                        frame_kind kind = frame_kind::message) {
  return make_frame(kind, text.data(), text.size());
}

inline std::string text_of(const std::vector<std::byte>& body) {
  return std::string(reinterpret_cast<const char*>(body.data()), body.size());
}

struct received_frame {
  frame_header header;
  std::vector<std::byte> body;
};

// Records what a connection reports; optionally echoes every frame back.
class recorder : public connection_handler {
public:
  explicit recorder(std::shared_ptr<reactor> io = nullptr, bool echo = false)
    : io_(std::move(io)), echo_(echo) {
    // nop
  }

  void on_frame(connection& conn, const frame_header& header,
                const std::byte* body) override {
    if (io_ && !io_->on_loop_thread())
      wrong_thread_ = true;
    if (echo_)
      conn.send(make_frame(header.kind, body, header.length));
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_count_ > 0)
      after_close_ = true;
    frames_.push_back({header, std::vector<std::byte>(body, body + header.length)});
    cv_.notify_all();
  }

  void on_closed(connection&, const caf::error& reason) override {
    if (io_ && !io_->on_loop_thread())
      wrong_thread_ = true;
    std::lock_guard<std::mutex> guard{mtx_};
    ++closed_count_;
    reason_ = reason;
    cv_.notify_all();
  }

  bool wait_frames(size_t count) {
    std::unique_lock<std::mutex> lock{mtx_};
    return cv_.wait_for(lock, wait_bound,
                        [&] { return frames_.size() >= count; });
  }

  bool wait_closed() {
    std::unique_lock<std::mutex> lock{mtx_};
    return cv_.wait_for(lock, wait_bound, [&] { return closed_count_ > 0; });
  }

  std::vector<received_frame> frames() {
    std::lock_guard<std::mutex> guard{mtx_};
    return frames_;
  }

  caf::error reason() {
    std::lock_guard<std::mutex> guard{mtx_};
    return reason_;
  }

  int closed_count() {
    std::lock_guard<std::mutex> guard{mtx_};
    return closed_count_;
  }

  bool misbehaved() {
    std::lock_guard<std::mutex> guard{mtx_};
    return wrong_thread_ || after_close_;
  }

private:
  std::shared_ptr<reactor> io_;
  bool echo_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<received_frame> frames_;
  caf::error reason_;
  int closed_count_ = 0;
  std::atomic<bool> wrong_thread_{false};
  bool after_close_ = false;
};

// Collects accepted connections.
class accept_queue {
public:
  accept_callback callback() {
    return [this](connection_ptr conn) {
      std::lock_guard<std::mutex> guard{mtx_};
      queue_.push_back(std::move(conn));
      ++total_;
      cv_.notify_all();
    };
  }

  connection_ptr pop() {
    std::unique_lock<std::mutex> lock{mtx_};
    if (!cv_.wait_for(lock, wait_bound, [&] { return !queue_.empty(); }))
      return nullptr;
    auto conn = std::move(queue_.front());
    queue_.pop_front();
    return conn;
  }

  size_t total() {
    std::lock_guard<std::mutex> guard{mtx_};
    return total_;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<connection_ptr> queue_;
  size_t total_ = 0;
};

inline std::string str(const caf::error& err) {
  return relay::describe(err);
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

inline bool write_all(int fd, const void* data, size_t len) {
  auto p = static_cast<const char*>(data);
  while (len > 0) {
    auto n = ::send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

inline endpoint ep(const std::string& uri) {
  auto result = endpoint::parse(uri);
  EXPECT_TRUE(result) << uri;
  return result ? *result : endpoint{};
}

/// Proves a listener still serves a good client after whatever a test
/// provoked: `client` connects to `uri`, the listener's end (taken from
/// `accepted`) echoes, and a frame comes back. Both ends are closed after,
/// so that what the connection holds (mq queues count against a per-user
/// limit) is given back.
inline void expect_serves_a_good_client(transport& client,
                                        const std::string& uri,
                                        accept_queue& accepted,
                                        const std::shared_ptr<reactor>& io) {
  auto conn = client.connect(ep(uri));
  ASSERT_TRUE(conn) << str(conn.error());
  auto server = accepted.pop();
  ASSERT_NE(server, nullptr);
  server->start(std::make_shared<recorder>(io, true));
  auto rec = std::make_shared<recorder>(io);
  (*conn)->start(rec);
  ASSERT_FALSE((*conn)->send(make_frame("still here")));
  ASSERT_TRUE(rec->wait_frames(1));
  EXPECT_EQ(text_of(rec->frames()[0].body), "still here");
  (*conn)->close(caf::none);
  EXPECT_TRUE(rec->wait_closed());
  server->close(caf::none);
}

/// A started client/server connection pair; `listener` keeps the listening
/// side alive.
struct connected_pair {
  std::unique_ptr<acceptor> listener;
  connection_ptr client;
  connection_ptr server;
  std::shared_ptr<recorder> client_rec;
  std::shared_ptr<recorder> server_rec;
};

/// `server_side` listens on `where`, `client_side` connects to the
/// listener's uri(); both ends are started with recorders on `io` (the
/// server's echoing with `server_echo`). Failures are test failures and
/// leave members null.
inline connected_pair connect_pair(transport& server_side,
                                   transport& client_side,
                                   const std::string& where,
                                   accept_queue& accepted,
                                   const std::shared_ptr<reactor>& io,
                                   bool server_echo = false) {
  connected_pair p;
  auto listener = server_side.listen(ep(where), accepted.callback());
  EXPECT_TRUE(listener) << str(listener.error());
  if (!listener)
    return p;
  p.listener = std::move(*listener);
  auto client = client_side.connect(ep(p.listener->uri()));
  EXPECT_TRUE(client) << str(client.error());
  if (!client)
    return p;
  p.client = *client;
  p.server = accepted.pop();
  EXPECT_NE(p.server, nullptr);
  if (!p.server)
    return p;
  p.client_rec = std::make_shared<recorder>(io);
  p.server_rec = std::make_shared<recorder>(io, server_echo);
  p.client->start(p.client_rec);
  p.server->start(p.server_rec);
  return p;
}

} // namespace relay::test
