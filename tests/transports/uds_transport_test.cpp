// The uds transport over real sockets: round trips, framing errors, socket
// file handling, the abstract namespace, many peers. Every wait is bounded
// and synchronised on an event; nothing sleeps.

#include "uds/uds_transport.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/reactor.hpp"
#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"
#include "relay/error.hpp"
#include "uds/uds_address.hpp"

using namespace relay;
using namespace std::chrono_literals;

namespace {

constexpr auto wait_bound = 20s;

frame_buffer make_frame(frame_kind kind, const void* body, size_t len) {
  frame_buffer buf(frame_header::size + len);
  frame_header header;
  header.kind = kind;
  header.length = static_cast<uint32_t>(len);
  header.write(buf.data());
  if (len > 0)
    std::memcpy(buf.data() + frame_header::size, body, len);
  return buf;
}

frame_buffer make_frame(const std::string& text,
                        frame_kind kind = frame_kind::message) {
  return make_frame(kind, text.data(), text.size());
}

std::string text_of(const std::vector<std::byte>& body) {
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

std::string str(const caf::error& err) {
  return relay::describe(err);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A plain blocking client socket, for bytes the transport would never send.
unique_fd raw_connect(const std::string& path) {
  unique_fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
    return unique_fd{};
  return fd;
}

bool write_all(int fd, const void* data, size_t len) {
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

class uds_transport_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/relay-uds-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    io_ = std::make_shared<reactor>();
    transport_ = std::make_unique<uds_transport>(io_, transport_options{});
  }

  void TearDown() override {
    transport_.reset();
    if (!dir_.empty())
      std::filesystem::remove_all(dir_);
  }

  std::string path(const std::string& name) const {
    return dir_ + "/" + name;
  }

  std::string uri(const std::string& name) const {
    return "uds://" + path(name);
  }

  static endpoint ep(const std::string& uri) {
    auto result = endpoint::parse(uri);
    EXPECT_TRUE(result) << uri;
    return result ? *result : endpoint{};
  }

  static std::string abstract_uri(const std::string& tag) {
    static std::atomic<int> counter{0};
    return "uds:@relay-test-" + std::to_string(::getpid()) + "-" + tag + "-"
           + std::to_string(counter++);
  }

  // A started client/server pair on `where`; `server_acceptor` keeps the
  // listener alive.
  struct pair {
    std::unique_ptr<acceptor> listener;
    connection_ptr client;
    connection_ptr server;
    std::shared_ptr<recorder> client_rec;
    std::shared_ptr<recorder> server_rec;
  };

  pair make_pair(const std::string& where, bool server_echo = false,
                 uds_transport* server_side = nullptr) {
    pair p;
    auto& srv = server_side ? *server_side : *transport_;
    auto listener = srv.listen(ep(where), accepted_.callback());
    EXPECT_TRUE(listener) << str(listener.error());
    if (!listener)
      return p;
    p.listener = std::move(*listener);
    auto client = transport_->connect(ep(where));
    EXPECT_TRUE(client) << str(client.error());
    if (!client)
      return p;
    p.client = *client;
    p.server = accepted_.pop();
    EXPECT_NE(p.server, nullptr);
    if (!p.server)
      return p;
    p.client_rec = std::make_shared<recorder>(io_);
    p.server_rec = std::make_shared<recorder>(io_, server_echo);
    p.client->start(p.client_rec);
    p.server->start(p.server_rec);
    return p;
  }

  std::string dir_;
  std::shared_ptr<reactor> io_;
  std::unique_ptr<uds_transport> transport_;
  accept_queue accepted_;
};

} // namespace

// -- addresses ----------------------------------------------------------------

TEST(uds_address_test, parses_paths_and_abstract_names) {
  auto path = uds_address::parse(*endpoint::parse("uds:///run/app/a.sock"));
  ASSERT_TRUE(path);
  EXPECT_FALSE(path->abstract);
  EXPECT_EQ(path->name, "/run/app/a.sock");
  EXPECT_EQ(path->uri(), "uds:///run/app/a.sock");
  auto name = uds_address::parse(*endpoint::parse("uds:@relay.node"));
  ASSERT_TRUE(name);
  EXPECT_TRUE(name->abstract);
  EXPECT_EQ(name->name, "relay.node");
  EXPECT_EQ(name->uri(), "uds:@relay.node");
  auto longest = "uds://" + std::string("/") + std::string(uds_address::max_length - 1, 'x');
  EXPECT_TRUE(uds_address::parse(*endpoint::parse(longest)));
}

TEST(uds_address_test, rejects_malformed_addresses) {
  auto too_long = "uds://" + std::string("/")
                  + std::string(uds_address::max_length, 'x');
  for (std::string bad : {"uds:///", "uds:relative/path", "uds:/one/slash",
                          "uds://host/path", "uds:@", "uds:////double",
                          "uds:///dir/", too_long.c_str()}) {
    auto parsed = uds_address::parse(*endpoint::parse(bad));
    ASSERT_FALSE(parsed) << bad;
    EXPECT_TRUE(is(parsed.error(), errc::invalid_uri)) << str(parsed.error());
    EXPECT_TRUE(contains(str(parsed.error()), bad)) << str(parsed.error());
  }
  auto parsed = uds_address::parse(*endpoint::parse(too_long));
  EXPECT_TRUE(contains(str(parsed.error()), "limit of 107 bytes"))
    << str(parsed.error());
}

// -- frames -------------------------------------------------------------------

TEST_F(uds_transport_test, round_trip_in_both_directions) {
  auto p = make_pair(uri("rt.sock"));
  ASSERT_TRUE(p.client && p.server);
  ASSERT_FALSE(p.client->send(make_frame("ping")));
  ASSERT_TRUE(p.server_rec->wait_frames(1));
  auto in = p.server_rec->frames().at(0);
  EXPECT_EQ(in.header.kind, frame_kind::message);
  EXPECT_EQ(text_of(in.body), "ping");
  ASSERT_FALSE(p.server->send(make_frame("pong", frame_kind::lookup_reply)));
  ASSERT_TRUE(p.client_rec->wait_frames(1));
  auto out = p.client_rec->frames().at(0);
  EXPECT_EQ(out.header.kind, frame_kind::lookup_reply);
  EXPECT_EQ(text_of(out.body), "pong");
  // Empty bodies are frames too.
  ASSERT_FALSE(p.client->send(make_frame("")));
  ASSERT_TRUE(p.server_rec->wait_frames(2));
  EXPECT_TRUE(p.server_rec->frames().at(1).body.empty());
  auto creds = "(pid " + std::to_string(::getpid()) + ", uid "
               + std::to_string(::geteuid()) + ")";
  EXPECT_EQ(p.client->peer_name(), uri("rt.sock") + " " + creds);
  EXPECT_EQ(p.server->peer_name(), uri("rt.sock") + " " + creds);
  EXPECT_FALSE(p.client_rec->misbehaved());
  EXPECT_FALSE(p.server_rec->misbehaved());
}

TEST_F(uds_transport_test, many_frames_from_many_threads_arrive_whole_and_in_order) {
  auto p = make_pair(uri("many.sock"));
  ASSERT_TRUE(p.client && p.server);
  constexpr uint32_t senders = 4;
  constexpr uint32_t per_sender = 5000;
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < senders; ++t)
    threads.emplace_back([&, t] {
      for (uint32_t seq = 0; seq < per_sender; ++seq) {
        std::vector<uint8_t> body(8 + seq % 300, static_cast<uint8_t>(seq));
        std::memcpy(body.data(), &t, 4);
        std::memcpy(body.data() + 4, &seq, 4);
        if (p.client->send(make_frame(frame_kind::message, body.data(),
                                      body.size())))
          return;
      }
    });
  for (auto& th : threads)
    th.join();
  ASSERT_TRUE(p.server_rec->wait_frames(senders * per_sender));
  std::vector<uint32_t> next(senders, 0);
  for (auto& f : p.server_rec->frames()) {
    uint32_t t;
    uint32_t seq;
    ASSERT_GE(f.body.size(), 8u);
    std::memcpy(&t, f.body.data(), 4);
    std::memcpy(&seq, f.body.data() + 4, 4);
    ASSERT_LT(t, senders);
    ASSERT_EQ(seq, next[t]) << "sender " << t;
    ++next[t];
    ASSERT_EQ(f.body.size(), 8 + seq % 300);
    for (size_t i = 8; i < f.body.size(); ++i)
      ASSERT_EQ(std::to_integer<uint8_t>(f.body[i]), static_cast<uint8_t>(seq));
  }
}

TEST_F(uds_transport_test, big_frame_spans_many_reads_and_writes) {
  auto p = make_pair(uri("big.sock"), /*server_echo=*/true);
  ASSERT_TRUE(p.client && p.server);
  std::vector<uint8_t> body(4 * 1024 * 1024);
  for (size_t i = 0; i < body.size(); ++i)
    body[i] = static_cast<uint8_t>(i * 7 + i / 4096);
  ASSERT_FALSE(p.client->send(make_frame(frame_kind::message, body.data(),
                                         body.size())));
  ASSERT_FALSE(p.client->send(make_frame("after")));
  ASSERT_TRUE(p.client_rec->wait_frames(2)); // echoed back by the server
  auto frames = p.client_rec->frames();
  ASSERT_EQ(frames[0].body.size(), body.size());
  EXPECT_EQ(std::memcmp(frames[0].body.data(), body.data(), body.size()), 0);
  EXPECT_EQ(text_of(frames[1].body), "after");
}

TEST_F(uds_transport_test, frame_over_the_bound_closes_with_frame_too_large) {
  transport_options small;
  small.max_frame_body = 1024;
  uds_transport strict{io_, small};
  auto p = make_pair(uri("bound.sock"), false, &strict);
  ASSERT_TRUE(p.client && p.server);
  // The sender refuses what its own bound forbids, without closing.
  auto refused = p.server->send(make_frame(std::string(1025, 'x')));
  EXPECT_TRUE(is(refused, errc::frame_too_large)) << str(refused);
  ASSERT_FALSE(p.client->send(make_frame(std::string(1024, 'a'))));
  ASSERT_FALSE(p.client->send(make_frame(std::string(2048, 'b'))));
  ASSERT_TRUE(p.server_rec->wait_closed());
  EXPECT_EQ(p.server_rec->frames().size(), 1u);
  auto reason = p.server_rec->reason();
  EXPECT_TRUE(is(reason, errc::frame_too_large)) << str(reason);
  EXPECT_TRUE(contains(str(reason), "2048")) << str(reason);
  EXPECT_TRUE(contains(str(reason), "bound of 1024")) << str(reason);
  EXPECT_TRUE(contains(str(reason), uri("bound.sock"))) << str(reason);
  ASSERT_TRUE(p.client_rec->wait_closed());
  EXPECT_TRUE(is(p.client_rec->reason(), errc::connection_closed));
  EXPECT_EQ(p.server_rec->closed_count(), 1);
}

TEST_F(uds_transport_test, bad_magic_closes_with_protocol_error) {
  auto listener = transport_->listen(ep(uri("magic.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  auto raw = raw_connect(path("magic.sock"));
  ASSERT_TRUE(raw);
  auto server = accepted_.pop();
  ASSERT_NE(server, nullptr);
  auto rec = std::make_shared<recorder>(io_);
  server->start(rec);
  std::byte bytes[frame_header::size];
  frame_header bogus;
  bogus.magic = 0xdeadbeef;
  bogus.write(bytes);
  ASSERT_TRUE(write_all(raw.get(), bytes, sizeof(bytes)));
  ASSERT_TRUE(rec->wait_closed());
  EXPECT_TRUE(is(rec->reason(), errc::protocol_error)) << str(rec->reason());
  EXPECT_TRUE(contains(str(rec->reason()), "bad magic 0xdeadbeef"));
  EXPECT_TRUE(contains(str(rec->reason()), uri("magic.sock")));
  EXPECT_TRUE(rec->frames().empty());
  // The server closed its end: the raw peer sees it.
  char c;
  EXPECT_LE(::read(raw.get(), &c, 1), 0);
}

TEST_F(uds_transport_test, peer_closing_mid_frame_is_reported) {
  auto listener = transport_->listen(ep(uri("mid.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  { // inside the body
    auto raw = raw_connect(path("mid.sock"));
    ASSERT_TRUE(raw);
    auto server = accepted_.pop();
    ASSERT_NE(server, nullptr);
    auto rec = std::make_shared<recorder>(io_);
    server->start(rec);
    auto frame = make_frame(std::string(100, 'z'));
    ASSERT_TRUE(write_all(raw.get(), frame.data(), frame_header::size + 40));
    raw.reset();
    ASSERT_TRUE(rec->wait_closed());
    EXPECT_TRUE(is(rec->reason(), errc::connection_closed));
    EXPECT_TRUE(contains(str(rec->reason()),
                         "peer closed mid-frame (got 52 of 112 bytes)"))
      << str(rec->reason());
  }
  { // inside the header
    auto raw = raw_connect(path("mid.sock"));
    ASSERT_TRUE(raw);
    auto server = accepted_.pop();
    ASSERT_NE(server, nullptr);
    auto rec = std::make_shared<recorder>(io_);
    server->start(rec);
    auto frame = make_frame("x");
    ASSERT_TRUE(write_all(raw.get(), frame.data(), 5));
    raw.reset();
    ASSERT_TRUE(rec->wait_closed());
    EXPECT_TRUE(contains(str(rec->reason()),
                         "peer closed mid-frame (got 5 of 12 header bytes)"))
      << str(rec->reason());
  }
}

TEST_F(uds_transport_test, close_is_reported_once_on_both_sides) {
  auto p = make_pair(uri("close.sock"));
  ASSERT_TRUE(p.client && p.server);
  auto why = make_error(errc::connection_closed, "test says bye");
  p.client->close(why);
  p.client->close(make_error(errc::protocol_error, "second close is ignored"));
  ASSERT_TRUE(p.client_rec->wait_closed());
  EXPECT_EQ(p.client_rec->reason(), why);
  ASSERT_TRUE(p.server_rec->wait_closed());
  EXPECT_TRUE(is(p.server_rec->reason(), errc::connection_closed));
  EXPECT_TRUE(contains(str(p.server_rec->reason()), "peer closed the connection"))
    << str(p.server_rec->reason());
  auto late = p.client->send(make_frame("late"));
  EXPECT_TRUE(is(late, errc::connection_closed)) << str(late);
  p.server->close(caf::none);
  // on_closed must not come twice; give the reactor a full turn to prove it.
  std::promise<void> turn;
  io_->dispatch([&] { turn.set_value(); });
  ASSERT_EQ(turn.get_future().wait_for(wait_bound), std::future_status::ready);
  EXPECT_EQ(p.client_rec->closed_count(), 1);
  EXPECT_EQ(p.server_rec->closed_count(), 1);
  EXPECT_FALSE(p.client_rec->misbehaved());
  EXPECT_FALSE(p.server_rec->misbehaved());
}

TEST_F(uds_transport_test, frames_sent_before_start_arrive_after_start) {
  auto listener = transport_->listen(ep(uri("early.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  auto client = transport_->connect(ep(uri("early.sock")));
  ASSERT_TRUE(client) << str(client.error());
  auto server = accepted_.pop();
  ASSERT_NE(server, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(server->send(make_frame("s" + std::to_string(i))));
    ASSERT_FALSE((*client)->send(make_frame("c" + std::to_string(i))));
  }
  auto client_rec = std::make_shared<recorder>(io_);
  auto server_rec = std::make_shared<recorder>(io_);
  (*client)->start(client_rec);
  server->start(server_rec);
  ASSERT_TRUE(client_rec->wait_frames(3));
  ASSERT_TRUE(server_rec->wait_frames(3));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(text_of(client_rec->frames()[i].body), "s" + std::to_string(i));
    EXPECT_EQ(text_of(server_rec->frames()[i].body), "c" + std::to_string(i));
  }
  // A close before start is reported after start.
  auto unstarted = transport_->connect(ep(uri("early.sock")));
  ASSERT_TRUE(unstarted);
  auto why = make_error(errc::connection_closed, "closed before start");
  (*unstarted)->close(why);
  auto rec = std::make_shared<recorder>(io_);
  (*unstarted)->start(rec);
  ASSERT_TRUE(rec->wait_closed());
  EXPECT_EQ(rec->reason(), why);
}

TEST_F(uds_transport_test, close_with_flush_sends_queued_frames_first) {
  auto listener = transport_->listen(ep(uri("flush.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  auto client = transport_->connect(ep(uri("flush.sock")));
  ASSERT_TRUE(client) << str(client.error());
  auto server = accepted_.pop();
  ASSERT_NE(server, nullptr);
  auto client_rec = std::make_shared<recorder>(io_);
  (*client)->start(client_rec);
  // The server does not read yet, so most of this stays queued.
  std::string big(3 * 1024 * 1024, 'q');
  ASSERT_FALSE((*client)->send(make_frame(big)));
  ASSERT_FALSE((*client)->send(make_frame("last")));
  auto why = make_error(errc::connection_closed, "done sending");
  (*client)->close(why, /*flush=*/true);
  EXPECT_TRUE(is((*client)->send(make_frame("too late")), errc::connection_closed));
  auto server_rec = std::make_shared<recorder>(io_);
  server->start(server_rec);
  ASSERT_TRUE(server_rec->wait_frames(2));
  EXPECT_EQ(server_rec->frames()[0].body.size(), big.size());
  EXPECT_EQ(text_of(server_rec->frames()[1].body), "last");
  ASSERT_TRUE(client_rec->wait_closed());
  EXPECT_EQ(client_rec->reason(), why);
  ASSERT_TRUE(server_rec->wait_closed());
  EXPECT_TRUE(is(server_rec->reason(), errc::connection_closed));
}

TEST_F(uds_transport_test, close_with_flush_is_bounded_when_the_peer_never_reads) {
  auto listener = transport_->listen(ep(uri("stuck.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  auto client = transport_->connect(ep(uri("stuck.sock")));
  ASSERT_TRUE(client) << str(client.error());
  auto server = accepted_.pop(); // never started: never reads
  ASSERT_NE(server, nullptr);
  auto client_rec = std::make_shared<recorder>(io_);
  (*client)->start(client_rec);
  ASSERT_FALSE((*client)->send(make_frame(std::string(8 * 1024 * 1024, 's'))));
  auto why = make_error(errc::connection_closed, "giving up");
  auto begin = std::chrono::steady_clock::now();
  (*client)->close(why, /*flush=*/true);
  ASSERT_TRUE(client_rec->wait_closed());
  EXPECT_GE(std::chrono::steady_clock::now() - begin,
            stream_connection::close_flush_timeout - 100ms);
  EXPECT_EQ(client_rec->reason(), why);
}

TEST_F(uds_transport_test, peer_vanishing_while_we_write_is_reported) {
  auto listener = transport_->listen(ep(uri("vanish.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  auto client = transport_->connect(ep(uri("vanish.sock")));
  ASSERT_TRUE(client) << str(client.error());
  auto client_rec = std::make_shared<recorder>(io_);
  (*client)->start(client_rec);
  ASSERT_FALSE((*client)->send(make_frame(std::string(8 * 1024 * 1024, 'v'))));
  accepted_.pop().reset(); // the server drops the connection unread
  ASSERT_TRUE(client_rec->wait_closed());
  EXPECT_TRUE(is(client_rec->reason(), errc::connection_closed))
    << str(client_rec->reason());
  EXPECT_TRUE(contains(str(client_rec->reason()), uri("vanish.sock")));
}

TEST_F(uds_transport_test, send_rejects_malformed_frames) {
  auto p = make_pair(uri("malformed.sock"));
  ASSERT_TRUE(p.client && p.server);
  EXPECT_TRUE(is(p.client->send(frame_buffer(3)), errc::invalid_argument));
  auto frame = make_frame("abc");
  frame.push_back(std::byte{0});
  EXPECT_TRUE(is(p.client->send(frame), errc::invalid_argument));
  frame_buffer bogus(frame_header::size);
  EXPECT_TRUE(is(p.client->send(bogus), errc::invalid_argument));
  // Still usable afterwards.
  ASSERT_FALSE(p.client->send(make_frame("fine")));
  ASSERT_TRUE(p.server_rec->wait_frames(1));
}

// -- socket files -------------------------------------------------------------

TEST_F(uds_transport_test, socket_file_is_created_0600) {
  auto old_mask = ::umask(0); // the mode must not depend on the umask
  auto listener = transport_->listen(ep(uri("mode.sock")), accepted_.callback());
  ::umask(old_mask);
  ASSERT_TRUE(listener) << str(listener.error());
  struct stat st{};
  ASSERT_EQ(::lstat(path("mode.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ((*listener)->uri(), uri("mode.sock"));
}

TEST_F(uds_transport_test, stale_socket_file_is_replaced) {
  { // a socket bound and abandoned without unlink
    unique_fd fd{::socket(AF_UNIX, SOCK_STREAM, 0)};
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path("stale.sock").c_str());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  }
  ASSERT_TRUE(std::filesystem::exists(path("stale.sock")));
  auto refused = transport_->connect(ep(uri("stale.sock")));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), errc::connect_failed));
  EXPECT_TRUE(contains(str(refused.error()), "nobody is listening"))
    << str(refused.error());
  auto p = make_pair(uri("stale.sock"));
  ASSERT_TRUE(p.client && p.server);
  ASSERT_FALSE(p.client->send(make_frame("works")));
  ASSERT_TRUE(p.server_rec->wait_frames(1));
}

TEST_F(uds_transport_test, live_listener_is_not_taken_over) {
  auto first = transport_->listen(ep(uri("live.sock")), accepted_.callback());
  ASSERT_TRUE(first) << str(first.error());
  accept_queue other;
  auto second = transport_->listen(ep(uri("live.sock")), other.callback());
  ASSERT_FALSE(second);
  EXPECT_TRUE(is(second.error(), errc::listen_failed));
  EXPECT_TRUE(contains(str(second.error()), "already in use by a live listener"))
    << str(second.error());
  EXPECT_TRUE(contains(str(second.error()), uri("live.sock")));
  // The probe reached the first listener and hung up.
  auto probe = accepted_.pop();
  ASSERT_NE(probe, nullptr);
  auto probe_rec = std::make_shared<recorder>(io_);
  probe->start(probe_rec);
  ASSERT_TRUE(probe_rec->wait_closed());
  // The first listener still serves.
  auto client = transport_->connect(ep(uri("live.sock")));
  ASSERT_TRUE(client) << str(client.error());
  ASSERT_NE(accepted_.pop(), nullptr);
  EXPECT_EQ(other.total(), 0u);
}

TEST_F(uds_transport_test, non_socket_file_is_left_alone) {
  { std::ofstream{path("data.txt")} << "precious"; }
  auto listener = transport_->listen(ep(uri("data.txt")), accepted_.callback());
  ASSERT_FALSE(listener);
  EXPECT_TRUE(is(listener.error(), errc::listen_failed));
  EXPECT_TRUE(contains(str(listener.error()), "not a socket"))
    << str(listener.error());
  std::ifstream in{path("data.txt")};
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(uds_transport_test, destroying_the_acceptor_removes_its_file) {
  auto listener = transport_->listen(ep(uri("gone.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  ASSERT_TRUE(std::filesystem::exists(path("gone.sock")));
  listener->reset();
  EXPECT_FALSE(std::filesystem::exists(path("gone.sock")));
  auto refused = transport_->connect(ep(uri("gone.sock")));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), errc::connect_failed));
  EXPECT_TRUE(contains(str(refused.error()), "no such socket"))
    << str(refused.error());
  EXPECT_EQ(accepted_.total(), 0u);
}

TEST_F(uds_transport_test, acceptor_leaves_a_replaced_file_alone) {
  auto listener = transport_->listen(ep(uri("swap.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  ASSERT_EQ(::unlink(path("swap.sock").c_str()), 0);
  { std::ofstream{path("swap.sock")} << "someone else's"; }
  listener->reset();
  EXPECT_TRUE(std::filesystem::exists(path("swap.sock")));
}

TEST_F(uds_transport_test, listen_reports_missing_directory) {
  auto listener = transport_->listen(ep(uri("no/such/dir.sock")),
                                     accepted_.callback());
  ASSERT_FALSE(listener);
  EXPECT_TRUE(is(listener.error(), errc::listen_failed));
  EXPECT_TRUE(contains(str(listener.error()), uri("no/such/dir.sock")));
}

// -- abstract namespace -------------------------------------------------------

TEST_F(uds_transport_test, abstract_namespace_works) {
  auto where = abstract_uri("abs");
  auto p = make_pair(where);
  ASSERT_TRUE(p.client && p.server);
  EXPECT_EQ(p.listener->uri(), where);
  ASSERT_FALSE(p.client->send(make_frame("hi")));
  ASSERT_TRUE(p.server_rec->wait_frames(1));
  ASSERT_FALSE(p.server->send(make_frame("there")));
  ASSERT_TRUE(p.client_rec->wait_frames(1));
  auto twice = transport_->listen(ep(where), accepted_.callback());
  ASSERT_FALSE(twice);
  EXPECT_TRUE(contains(str(twice.error()), "already in use by a live listener"));
  p.listener.reset();
  auto refused = transport_->connect(ep(where));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(contains(str(refused.error()), "nobody is listening"))
    << str(refused.error());
}

// -- many peers ---------------------------------------------------------------

TEST_F(uds_transport_test, sixty_four_concurrent_connections) {
  constexpr int peers = 64;
  auto echo = std::make_shared<recorder>(io_, /*echo=*/true);
  std::vector<connection_ptr> servers;
  std::mutex servers_mtx;
  auto listener = transport_->listen(ep(uri("many.sock")), [&](connection_ptr c) {
    c->start(echo);
    std::lock_guard<std::mutex> guard{servers_mtx};
    servers.push_back(std::move(c));
  });
  ASSERT_TRUE(listener) << str(listener.error());
  std::vector<std::future<std::string>> results;
  for (int i = 0; i < peers; ++i)
    results.push_back(std::async(std::launch::async, [&, i]() -> std::string {
      auto conn = transport_->connect(ep(uri("many.sock")));
      if (!conn)
        return "connect: " + str(conn.error());
      auto rec = std::make_shared<recorder>(io_);
      (*conn)->start(rec);
      auto text = "peer " + std::to_string(i);
      if (auto err = (*conn)->send(make_frame(text)))
        return "send: " + str(err);
      if (!rec->wait_frames(1))
        return "no echo";
      auto got = text_of(rec->frames()[0].body);
      (*conn)->close(caf::none);
      if (!rec->wait_closed())
        return "no on_closed";
      return got == text ? "" : "wrong echo " + got;
    }));
  for (auto& r : results) {
    ASSERT_EQ(r.wait_for(wait_bound), std::future_status::ready);
    EXPECT_EQ(r.get(), "");
  }
  EXPECT_TRUE(echo->wait_frames(peers));
  std::lock_guard<std::mutex> guard{servers_mtx};
  EXPECT_EQ(servers.size(), static_cast<size_t>(peers));
}

// -- other uids (root only: a child process drops to "nobody") ----------------

TEST_F(uds_transport_test, peer_of_another_uid_is_rejected_by_the_listener) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to run a peer under another uid";
  auto where = abstract_uri("uid");
  auto listener = transport_->listen(ep(where), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  sockaddr_un sa;
  auto len = uds_address::parse(ep(where))->to_sockaddr(sa);
  testing::internal::CaptureStderr();
  auto child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::alarm(10); // never outlive a broken test
    if (::setuid(65534) != 0)
      ::_exit(10);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0)
      ::_exit(11);
    char c;
    ::_exit(::read(fd, &c, 1) <= 0 ? 0 : 12); // the listener hangs up
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  auto log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(contains(log, "relay: warning: " + where + ": rejected peer pid "
                              + std::to_string(child)
                              + " uid 65534: uid differs from 0"))
    << log;
  EXPECT_EQ(accepted_.total(), 0u);
  EXPECT_EQ(transport_->rejected_peers(), 1u);
}

TEST_F(uds_transport_test, listener_of_another_uid_is_rejected_by_the_connector) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to run a listener under another uid";
  auto where = abstract_uri("uid-listener");
  sockaddr_un sa;
  auto len = uds_address::parse(ep(where))->to_sockaddr(sa);
  int ready[2];
  int done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  auto child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::alarm(10);
    ::close(ready[0]);
    ::close(done[1]);
    if (::setuid(65534) != 0)
      ::_exit(10);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0
        || ::listen(fd, 8) != 0)
      ::_exit(11);
    char c = 'r';
    if (::write(ready[1], &c, 1) != 1)
      ::_exit(12);
    ::read(done[0], &c, 1); // until the parent is done
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(done[0]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  auto conn = transport_->connect(ep(where));
  transport_options lenient;
  lenient.allow_other_uids = true;
  uds_transport tolerant{io_, lenient};
  auto allowed = tolerant.connect(ep(where));
  ::close(done[1]);
  ::close(ready[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::peer_rejected)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "uid 65534")) << str(conn.error());
  ASSERT_TRUE(allowed) << str(allowed.error());
  EXPECT_TRUE(contains((*allowed)->peer_name(), "uid 65534"));
}
