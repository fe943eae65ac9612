// What only the mq transport does: queues of another user or open to others
// are refused on both sides, bad rendezvous requests are refused with a log
// line while the listener goes on serving, a peer that breaks the stream
// rules is closed with a clear reason, limits give errors that name them,
// and the default sizes (10 messages of 8 KiB) carry any frame. What every
// transport must do is in conformance_test.cpp; crashes of real processes
// are in multi_process_test.cpp. Nothing sleeps.

#include "mq/mq_transport.hpp"

#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "common/reactor.hpp"
#include "mq/mq_queue.hpp"
#include "test_support.hpp"
#include "transport_test_support.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

class mq_transport_test : public ::testing::Test {
protected:
  void SetUp() override {
    io_ = std::make_shared<reactor>();
    transport_options opts;
    opts.handshake_timeout = 2000ms;
    transport_ = std::make_unique<mq_transport>(io_, opts);
    name_ = "/" + dir_.path().substr(dir_.path().rfind('/') + 1) + "-mq";
    uri_ = "mq://" + name_;
    auto l = transport_->listen(ep(uri_), accepted_.callback());
    ASSERT_TRUE(l) << str(l.error());
    listener_ = std::move(*l);
  }

  // A client that keeps its queues, to break the rules with: the first
  // steps of the rendezvous done by hand.
  struct evil_client {
    std::string up_name, down_name;
    unique_fd up, down;

    ~evil_client() {
      mq::unlink_queue(up_name);
      mq::unlink_queue(down_name);
    }
  };

  // Creates a pair for `token` (mode `mode`) and sends `request` (by
  // default the right one) to the accept queue.
  std::unique_ptr<evil_client> evil_request(const std::string& token,
                                            mode_t mode = 0600,
                                            std::string request = {}) {
    auto c = std::make_unique<evil_client>();
    auto addr = mq::address::parse(ep(uri_));
    EXPECT_TRUE(addr);
    auto pid = static_cast<uint32_t>(::getpid());
    c->up_name = addr->up(pid, token);
    c->down_name = addr->down(pid, token);
    mq_attr attr{};
    attr.mq_maxmsg = 10;
    attr.mq_msgsize = 1024;
    auto old = ::umask(0);
    c->up = unique_fd{::mq_open(c->up_name.c_str(),
                                O_CREAT | O_EXCL | O_WRONLY | O_NONBLOCK, mode,
                                &attr)};
    c->down = unique_fd{::mq_open(c->down_name.c_str(),
                                  O_CREAT | O_EXCL | O_RDONLY | O_NONBLOCK,
                                  mode, &attr)};
    ::umask(old);
    EXPECT_TRUE(c->up && c->down) << std::strerror(errno);
    if (request.empty()) {
      uint8_t req[mq::request_size];
      mq::write_request({pid, token}, req);
      request.assign(reinterpret_cast<char*>(req), sizeof(req));
    }
    send_to_listener(request);
    return c;
  }

  void send_to_listener(const std::string& bytes) {
    unique_fd q{::mq_open(name_.c_str(), O_WRONLY)};
    ASSERT_TRUE(q) << std::strerror(errno);
    ASSERT_EQ(::mq_send(q.get(), bytes.data(), bytes.size(), 0), 0)
      << std::strerror(errno);
  }

  // The listener's answer on the pair within `bound`: true if it accepted.
  // After a refusal's log line, any answer is already there (bound 0).
  static bool answer(const evil_client& c,
                     std::chrono::milliseconds bound = 10s) {
    char buf[1024];
    unsigned prio;
    pollfd p{c.down.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(bound.count())) != 1)
      return false;
    auto n = ::mq_receive(c.down.get(), buf, sizeof(buf), &prio);
    mq::reply rep;
    return n > 0
           && mq::read_reply(reinterpret_cast<uint8_t*>(buf),
                             static_cast<size_t>(n), rep)
                .empty()
           && rep.accepted;
  }

  // The listener's end of the last connection, started with a recorder.
  std::pair<connection_ptr, std::shared_ptr<recorder>> accept_started() {
    auto server = accepted_.pop();
    auto rec = std::make_shared<recorder>(io_);
    if (server)
      server->start(rec);
    return {server, rec};
  }


  temp_dir dir_;
  std::shared_ptr<reactor> io_;
  std::unique_ptr<mq_transport> transport_;
  std::string name_;
  std::string uri_;
  accept_queue accepted_;
  std::unique_ptr<acceptor> listener_;
  log_capture logs_;
};

} // namespace

TEST_F(mq_transport_test, default_sizes_carry_a_frame_of_many_messages) {
  // 10 messages of 8 KiB per queue: a 3 MiB frame is 384 of them.
  auto conn = transport_->connect(ep(uri_));
  ASSERT_TRUE(conn) << str(conn.error());
  auto [server, rec] = accept_started();
  ASSERT_NE(server, nullptr);
  auto client_rec = std::make_shared<recorder>(io_);
  (*conn)->start(client_rec);
  std::string big(3 * 1024 * 1024, 'q');
  for (size_t i = 0; i < big.size(); i += 4099)
    big[i] = static_cast<char>('a' + i % 26);
  ASSERT_FALSE((*conn)->send(make_frame(big)));
  ASSERT_TRUE(rec->wait_frames(1));
  EXPECT_EQ(text_of(rec->frames()[0].body), big);
  (*conn)->close(caf::none);
  ASSERT_TRUE(client_rec->wait_closed());
  server->close(caf::none);
}

TEST_F(mq_transport_test, the_pair_is_unlinked_once_connected) {
  auto c = evil_request("00112233445566aa");
  ASSERT_TRUE(answer(*c));
  // Both names are gone: a crash of either side from now on leaves nothing.
  EXPECT_LT(::mq_open(c->up_name.c_str(), O_RDONLY), 0);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_LT(::mq_open(c->down_name.c_str(), O_RDONLY), 0);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(mq_transport_test, a_queue_open_to_others_is_refused_on_both_sides) {
  // A pair of mode 0622 (world-writable): the listener refuses it.
  auto c = evil_request("0123456789abcdef", 0622);
  EXPECT_TRUE(logs_.wait_for({uri_, "refused", "mode 0622, not 0600"}));
  EXPECT_FALSE(answer(*c, 0ms));
  EXPECT_EQ(transport_->rejected_peers(), 1u);
  // An accept queue of mode 0644 is refused by a client.
  auto loose = name_ + "-loose";
  mq_attr attr{};
  attr.mq_maxmsg = mq::accept_depth;
  attr.mq_msgsize = mq::accept_message_size;
  auto old = ::umask(0);
  unique_fd q{::mq_open(loose.c_str(), O_CREAT | O_EXCL | O_RDONLY, 0644,
                        &attr)};
  ::umask(old);
  ASSERT_TRUE(q) << std::strerror(errno);
  auto conn = transport_->connect(ep("mq://" + loose));
  mq::unlink_queue(loose);
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::peer_rejected)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "mode 0644")) << str(conn.error());
  expect_serves_a_good_client(*transport_, uri_, accepted_, io_);
}

TEST_F(mq_transport_test, a_queue_of_another_user_is_refused_on_both_sides) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "giving a queue to another user needs root";
  // The listener's name, taken by another user: listen refuses it.
  auto theirs = name_ + "-theirs";
  mq_attr attr{};
  attr.mq_maxmsg = mq::accept_depth;
  attr.mq_msgsize = mq::accept_message_size;
  unique_fd q{::mq_open(theirs.c_str(), O_CREAT | O_EXCL | O_RDONLY, 0600,
                        &attr)};
  ASSERT_TRUE(q) << std::strerror(errno);
  ASSERT_EQ(::fchown(q.get(), 65534, 65534), 0) << std::strerror(errno);
  auto l = transport_->listen(ep("mq://" + theirs), [](connection_ptr) {});
  ASSERT_FALSE(l);
  EXPECT_TRUE(contains(str(l.error()), "owned by uid 65534")) << str(l.error());
  // A client refuses to send to it.
  auto conn = transport_->connect(ep("mq://" + theirs));
  mq::unlink_queue(theirs);
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::peer_rejected)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "owned by uid 65534"))
    << str(conn.error());
  // A pair of another user: the listener refuses it.
  auto pid = static_cast<uint32_t>(::getpid());
  auto addr = mq::address::parse(ep(uri_));
  auto c2 = std::make_unique<evil_client>();
  c2->up_name = addr->up(pid, "aaaaaaaaaaaaaaaa");
  c2->down_name = addr->down(pid, "aaaaaaaaaaaaaaaa");
  attr.mq_msgsize = 1024;
  c2->up = unique_fd{::mq_open(c2->up_name.c_str(),
                               O_CREAT | O_EXCL | O_WRONLY, 0600, &attr)};
  c2->down = unique_fd{::mq_open(c2->down_name.c_str(),
                                 O_CREAT | O_EXCL | O_RDONLY, 0600, &attr)};
  ASSERT_TRUE(c2->up && c2->down);
  ASSERT_EQ(::fchown(c2->up.get(), 65534, 65534), 0);
  uint8_t req[mq::request_size];
  mq::write_request({pid, "aaaaaaaaaaaaaaaa"}, req);
  send_to_listener(std::string(reinterpret_cast<char*>(req), sizeof(req)));
  EXPECT_TRUE(logs_.wait_for({uri_, "refused", "owned by uid 65534"}));
  EXPECT_FALSE(answer(*c2, 0ms));
}

TEST_F(mq_transport_test, bad_requests_are_refused_and_the_listener_serves_on) {
  uint8_t good[mq::request_size];
  mq::write_request({static_cast<uint32_t>(::getpid()), "0000000000000000"},
                    good);
  std::string req(reinterpret_cast<char*>(good), sizeof(good));
  send_to_listener("short");
  EXPECT_TRUE(logs_.wait_for({uri_, "refused", "a request of 5 bytes"}));
  auto bad_magic = req;
  bad_magic[0] = 'X';
  send_to_listener(bad_magic);
  EXPECT_TRUE(logs_.wait_for({uri_, "refused", "bad magic"}));
  auto bad_version = req;
  bad_version[4] = 9;
  send_to_listener(bad_version);
  EXPECT_TRUE(logs_.wait_for({uri_, "refused", "rendezvous version 9"}));
  auto bad_token = req;
  bad_token[12] = '/';
  send_to_listener(bad_token);
  EXPECT_TRUE(logs_.wait_for({uri_, "refused", "16 lowercase hex digits"}));
  auto bad_pid = req;
  std::memset(bad_pid.data() + 8, 0, 4);
  send_to_listener(bad_pid);
  EXPECT_TRUE(logs_.wait_for({uri_, "refused", "pid 0 is not a process id"}));
  // A request naming queues nobody created.
  send_to_listener(req);
  EXPECT_TRUE(logs_.wait_for({uri_, "refused", "No such file or directory"}));
  EXPECT_EQ(transport_->rejected_peers(), 6u);
  expect_serves_a_good_client(*transport_, uri_, accepted_, io_);
}

TEST_F(mq_transport_test, a_priority_or_data_after_the_end_closes_the_peer) {
  for (bool after_end : {false, true}) {
    auto c = evil_request(after_end ? "1111111111111111" : "2222222222222222");
    ASSERT_TRUE(answer(*c));
    auto [server, rec] = accept_started();
    ASSERT_NE(server, nullptr);
    if (after_end) {
      ASSERT_EQ(::mq_send(c->up.get(), "", 0, 0), 0);
      ASSERT_EQ(::mq_send(c->up.get(), "late", 4, 0), 0);
    } else {
      ASSERT_EQ(::mq_send(c->up.get(), "abc", 3, 3), 0);
    }
    ASSERT_TRUE(rec->wait_closed());
    auto reason = str(rec->reason());
    if (after_end) {
      // The end came first: reported as a close, unless the late message
      // was seen in the same read.
      EXPECT_TRUE(is(rec->reason(), errc::connection_closed)
                  || contains(reason, "a message after the end"))
        << reason;
    } else {
      EXPECT_TRUE(is(rec->reason(), errc::protocol_error)) << reason;
      EXPECT_TRUE(contains(reason, "a message with priority 3")) << reason;
    }
  }
  expect_serves_a_good_client(*transport_, uri_, accepted_, io_);
}

TEST_F(mq_transport_test, limits_and_bad_settings_are_named) {
  // Sizes outside the bounds.
  caf::settings small;
  caf::put(small, "relay.mq.message-size", size_t{64});
  transport_options opts;
  opts.settings = &small;
  mq_transport tiny{io_, opts};
  auto conn = tiny.connect(ep(uri_));
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::invalid_argument)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "relay.mq.message-size 64"));
  // Above what an unprivileged process may ask for.
  caf::settings big;
  caf::put(big, "relay.mq.max-messages", size_t{1000});
  opts.settings = &big;
  mq_transport huge{io_, opts};
  conn = huge.connect(ep(uri_));
  ASSERT_FALSE(conn);
  EXPECT_TRUE(contains(str(conn.error()), "relay.mq.max-messages 1000"))
    << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "fs.mqueue.msg_max = "))
    << str(conn.error());
  // The user's queue memory used up.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_MSGQUEUE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_MSGQUEUE, &low), 0);
  conn = transport_->connect(ep(uri_));
  ::setrlimit(RLIMIT_MSGQUEUE, &saved);
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::connect_failed)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "RLIMIT_MSGQUEUE = 1024 bytes"))
    << str(conn.error());
  expect_serves_a_good_client(*transport_, uri_, accepted_, io_);
}

TEST_F(mq_transport_test, addresses_are_checked) {
  for (auto bad : {"mq://x", "mq:///", "mq:///a/b", "mq:///a b", "mq:///.."}) {
    auto l = transport_->listen(ep(bad), [](connection_ptr) {});
    ASSERT_FALSE(l) << bad;
    EXPECT_TRUE(is(l.error(), errc::invalid_uri)) << str(l.error());
  }
  auto none = transport_->connect(ep("mq://" + name_ + "-nobody"));
  ASSERT_FALSE(none);
  EXPECT_TRUE(contains(str(none.error()), "nobody listens"))
    << str(none.error());
  // A second listener on a live name is refused.
  auto twice = transport_->listen(ep(uri_), [](connection_ptr) {});
  ASSERT_FALSE(twice);
  EXPECT_TRUE(contains(str(twice.error()), "another listener serves"))
    << str(twice.error());
  // Closing the listener removes its name.
  listener_.reset();
  EXPECT_LT(::mq_open(name_.c_str(), O_RDONLY), 0);
  EXPECT_EQ(errno, ENOENT);
}

namespace {

// Two queues of 10 messages of 256 bytes, open both ways, their names gone:
// a channel's rx and tx, with the test as the peer.
std::pair<unique_fd, unique_fd> unnamed_pair() {
  mq_attr attr{};
  attr.mq_maxmsg = 10;
  attr.mq_msgsize = 256;
  auto make = [&](const char* tag) {
    auto name = "/relay-mq-channel-test-" + std::to_string(::getpid()) + tag;
    unique_fd fd{::mq_open(name.c_str(),
                           O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK, 0600,
                           &attr)};
    ::mq_unlink(name.c_str());
    return fd;
  };
  auto rx = make("-rx");
  return {std::move(rx), make("-tx")};
}

} // namespace

TEST(mq_channel, what_read_holds_stays_readable_with_the_queue_empty) {
  // A message larger than the caller's buffer is staged, and an end taken
  // with the last data is held: the queue then shows nothing, yet the
  // connection must be told to read (it calls on_ready itself after a
  // pause or for a further turn).
  auto [rx, tx] = unnamed_pair();
  ASSERT_TRUE(rx && tx) << std::strerror(errno);
  int peer_tx = ::dup(rx.get());
  auto chan = mq_channel::make(std::move(rx), std::move(tx), unique_fd{}, {},
                               "test");
  ASSERT_TRUE(chan) << str(chan.error());
  auto& c = **chan;
  c.watch(EPOLLIN);
  std::string msg(200, 'm');
  ASSERT_EQ(::mq_send(peer_tx, msg.data(), msg.size(), 0), 0);
  ASSERT_EQ(::mq_send(peer_tx, "", 0, 0), 0);
  char buf[300];
  EXPECT_NE(c.on_ready(0) & EPOLLIN, 0u);
  ASSERT_EQ(c.read(buf, 50), 50); // 150 bytes staged
  EXPECT_TRUE(c.poll_more());
  EXPECT_NE(c.on_ready(0) & EPOLLIN, 0u); // the end is still queued
  ASSERT_EQ(c.read(buf, 300), 150); // the rest; the end is taken too
  EXPECT_TRUE(c.poll_more());
  EXPECT_NE(c.on_ready(0) & EPOLLIN, 0u) << "the end is lost";
  EXPECT_EQ(c.read(buf, 300), 0);
  EXPECT_FALSE(c.poll_more());
  ::close(peer_tx);
}

TEST(mq_channel, a_dead_peer_is_reported_after_what_it_sent) {
  auto [rx, tx] = unnamed_pair();
  ASSERT_TRUE(rx && tx) << std::strerror(errno);
  // The "peer": a process that sends one message and dies without an end.
  auto pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::mq_send(rx.get(), "last words", 10, 0);
    ::_exit(0);
  }
  auto peer = mq::open_pidfd(pid);
  ASSERT_TRUE(peer) << std::strerror(errno);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  auto chan = mq_channel::make(std::move(rx), std::move(tx), std::move(peer),
                               {}, "test");
  ASSERT_TRUE(chan) << str(chan.error());
  auto& c = **chan;
  c.watch(EPOLLIN);
  EXPECT_NE(c.on_ready(0) & EPOLLIN, 0u);
  char buf[300];
  ASSERT_EQ(c.read(buf, sizeof(buf)), 10);
  EXPECT_EQ(std::string(buf, 10), "last words");
  EXPECT_EQ(c.read(buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_TRUE(contains(c.error_text(ECONNRESET), "process exited"))
    << c.error_text(ECONNRESET);
}

TEST(mq_listener, a_limit_is_named_when_listening) {
  auto io = std::make_shared<reactor>();
  mq_transport t{io, transport_options{}};
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_MSGQUEUE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 100;
  ASSERT_EQ(::setrlimit(RLIMIT_MSGQUEUE, &low), 0);
  auto l = t.listen(ep("mq:///relay-mq-limit-" + std::to_string(::getpid())),
                    [](connection_ptr) {});
  ::setrlimit(RLIMIT_MSGQUEUE, &saved);
  ASSERT_FALSE(l);
  EXPECT_TRUE(contains(str(l.error()), "RLIMIT_MSGQUEUE = 100 bytes"))
    << str(l.error());
}
