// Large frames as sealed memory files (bulk_frame.hpp) over a real Unix
// socketpair: they arrive whole and in order among small frames, at sizes
// beyond the socket's buffer and at the frame bound; every descriptor is
// closed afterwards. A peer that sends a bad bulk frame or a bad file gets
// its connection closed with a reason naming what was wrong, and leaks
// nothing.

#include "common/bulk_frame.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/reactor.hpp"
#include "common/stream_connection.hpp"
#include "transport_test_support.hpp"

namespace relay {
namespace {

using namespace relay::test;

// Open memory files and pipes: what a bulk frame brings or leaks. (The
// reactor's own descriptors, which it may close a little later on its own
// thread, are not counted.)
size_t open_files() {
  size_t n = 0;
  if (auto* dir = ::opendir("/proc/self/fd")) {
    while (auto* entry = ::readdir(dir)) {
      char target[256] = {};
      auto path = std::string{"/proc/self/fd/"} + entry->d_name;
      auto len = ::readlink(path.c_str(), target, sizeof(target) - 1);
      if (len <= 0)
        continue;
      std::string link{target, static_cast<size_t>(len)};
      if (link.rfind("/memfd:", 0) == 0 || link.rfind("pipe:", 0) == 0)
        ++n;
    }
    ::closedir(dir);
  }
  return n;
}

// A frame of `size` bytes in all (header included) whose body is a pattern
// that depends on `seed`, so that a shifted or mixed-up body shows.
frame_buffer pattern_frame(size_t size, uint8_t seed) {
  std::vector<std::byte> body(size - frame_header::size);
  for (size_t i = 0; i < body.size(); ++i)
    body[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return make_frame(frame_kind::message, body.data(), body.size());
}

bool has_pattern(const std::vector<std::byte>& body, uint8_t seed) {
  for (size_t i = 0; i < body.size(); ++i)
    if (body[i] != static_cast<std::byte>((i * 31 + seed) & 0xff))
      return false;
  return true;
}

// A socket that counts the writes that carried a descriptor.
class counting_channel : public socket_channel {
public:
  using socket_channel::socket_channel;

  ssize_t write_fd(const iovec* iov, size_t count, int fd) override {
    auto n = socket_channel::write_fd(iov, count, fd);
    if (n > 0)
      files.fetch_add(1);
    return n;
  }

  std::atomic<size_t> files{0};
};

constexpr uint32_t bound = 32u << 20;

transport_options with_bound() {
  transport_options opts;
  opts.max_frame_body = bound;
  return opts;
}

TEST(bulk_frame, large_frames_arrive_whole_and_in_order_among_small_ones) {
  auto fds_before = open_files();
  {
    auto io = std::make_shared<reactor>();
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                           0, sv),
              0);
    auto chan = std::make_unique<counting_channel>(unique_fd{sv[0]}, true);
    auto* channel = chan.get();
    auto sender = stream_connection::make(io, std::move(chan), "sender",
                                          with_bound());
    auto receiver = stream_connection::make(
      io, std::make_unique<socket_channel>(unique_fd{sv[1]}, true), "receiver",
      with_bound());
    auto sender_events = std::make_shared<recorder>(io);
    auto received = std::make_shared<recorder>(io);
    sender->allow_bulk(); // the receiver said it reads bulk frames
    sender->start(sender_events);
    receiver->start(received);
    // Below, at and above the threshold, beyond the socket buffer, and a
    // body at the bound itself; a small frame between each.
    std::vector<size_t> sizes{stream_connection::bulk_threshold - 1,
                              stream_connection::bulk_threshold,
                              size_t{1} << 20,
                              size_t{17} << 20,
                              frame_header::size + bound};
    // One at a time: a receiver that keeps up gets every large frame as a
    // file (see the paused test below for one that does not).
    uint8_t seed = 0;
    for (auto size : sizes) {
      ASSERT_FALSE(sender->send(pattern_frame(size, ++seed))) << size;
      ASSERT_FALSE(sender->send(make_frame("after " + std::to_string(size))));
      ASSERT_TRUE(received->wait_frames(2 * seed));
    }
    // send_copy leaves the frame with the caller, intact.
    auto kept = pattern_frame(size_t{2} << 20, ++seed);
    auto copy = kept;
    ASSERT_FALSE(sender->send_copy(kept));
    EXPECT_EQ(kept, copy);
    ASSERT_TRUE(received->wait_frames(2 * sizes.size() + 1));
    auto got = received->frames();
    ASSERT_EQ(got.size(), 2 * sizes.size() + 1);
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto& large = got[2 * i];
      EXPECT_EQ(large.header.kind, frame_kind::message);
      ASSERT_EQ(large.body.size(), sizes[i] - frame_header::size) << i;
      EXPECT_TRUE(has_pattern(large.body, static_cast<uint8_t>(i + 1))) << i;
      EXPECT_EQ(text_of(got[2 * i + 1].body),
                "after " + std::to_string(sizes[i]));
    }
    EXPECT_TRUE(has_pattern(got.back().body, seed));
    // Every frame from the threshold up went as a file: all sizes but the
    // first, and `kept`.
    EXPECT_EQ(channel->files.load(), sizes.size() - 1 + 1);
    EXPECT_FALSE(received->misbehaved());
    // Counted as the frames they carry, plus the bulk frames (20 bytes)
    // that stood in for them on the socket.
    uint64_t total = 0;
    for (auto size : sizes)
      total += size + frame_header::size + 6 + std::to_string(size).size();
    total += kept.size();
    size_t bulk_frames = sizes.size() - 1 + 1; // all sizes but the first, kept
    total += bulk_frames * (frame_header::size + bulk_body_size);
    EXPECT_EQ(receiver->traffic().bytes_in, total);
    EXPECT_EQ(sender->traffic().bytes_out, total);
    sender->close(caf::none);
    receiver->close(caf::none);
    ASSERT_TRUE(sender_events->wait_closed());
    ASSERT_TRUE(received->wait_closed());
  }
  EXPECT_EQ(open_files(), fds_before); // every file closed on both sides
}

TEST(bulk_frame, a_receiver_that_does_not_read_holds_at_most_a_few_files) {
  auto files_before = open_files();
  {
    auto io = std::make_shared<reactor>();
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                           0, sv),
              0);
    auto chan = std::make_unique<counting_channel>(unique_fd{sv[0]}, true);
    auto* channel = chan.get();
    auto sender = stream_connection::make(io, std::move(chan), "sender", {});
    auto receiver = stream_connection::make(
      io, std::make_unique<socket_channel>(unique_fd{sv[1]}, true), "receiver",
      transport_options{});
    auto sender_events = std::make_shared<recorder>(io);
    auto received = std::make_shared<recorder>(io);
    sender->allow_bulk();
    sender->start(sender_events);
    receiver->pause_reading(true);
    receiver->start(received);
    constexpr size_t count = 10;
    constexpr size_t size = size_t{1} << 20;
    for (size_t i = 0; i < count; ++i)
      ASSERT_FALSE(sender->send(pattern_frame(size, static_cast<uint8_t>(i))));
    // The first few went as files; the rest through the socket, where
    // they back up (and count against relay.max-queued-bytes).
    EXPECT_EQ(channel->files.load(),
              size_t{stream_connection::max_files_in_flight});
    EXPECT_GT(sender->traffic().queued_bytes, 0u);
    receiver->pause_reading(false);
    ASSERT_TRUE(received->wait_frames(count));
    auto got = received->frames();
    for (size_t i = 0; i < count; ++i) {
      ASSERT_EQ(got[i].body.size(), size - frame_header::size);
      EXPECT_TRUE(has_pattern(got[i].body, static_cast<uint8_t>(i))) << i;
    }
    // All read: the next large frame goes as a file again.
    ASSERT_FALSE(sender->send(pattern_frame(size, 99)));
    ASSERT_TRUE(received->wait_frames(count + 1));
    EXPECT_EQ(channel->files.load(),
              size_t{stream_connection::max_files_in_flight} + 1);
    EXPECT_TRUE(has_pattern(received->frames().back().body, 99));
    sender->close(caf::none);
    receiver->close(caf::none);
    ASSERT_TRUE(sender_events->wait_closed());
    ASSERT_TRUE(received->wait_closed());
  }
  EXPECT_EQ(open_files(), files_before);
}

// -- a peer that misbehaves ----------------------------------------------------

// The receiver is a stream_connection; the peer is the raw other end of
// the socketpair, writing whatever bytes and descriptors a test wants.
class bulk_peer_test : public ::testing::Test {
protected:
  void SetUp() override {
    fds_before = open_files();
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                           0, sv),
              0);
    peer.reset(sv[0]);
    receiver = stream_connection::make(
      io, std::make_unique<socket_channel>(unique_fd{sv[1]}, pass_fds()),
      "bad peer", transport_options{});
    receiver->start(received);
  }

  void TearDown() override {
    receiver->close(caf::none);
    received->wait_closed();
    receiver.reset();
    received.reset();
    peer.reset();
    io.reset(); // joins the reactor, which may hold the last references
    EXPECT_EQ(open_files(), fds_before) << "a descriptor leaked";
  }

  virtual bool pass_fds() const {
    return true;
  }

  // Sends `bytes` with `fds` attached.
  void send_raw(const frame_buffer& bytes, std::vector<int> fds = {}) {
    iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    if (!fds.empty()) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      auto* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ASSERT_EQ(::sendmsg(peer.get(), &msg, MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }

  static frame_buffer bulk_frame(uint64_t size) {
    return make_frame(frame_kind::bulk, &size, sizeof(size));
  }

  // A memory file holding `bytes`, sealed with `seals`.
  static unique_fd memory_file(const frame_buffer& bytes, int seals) {
    unique_fd fd{::memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING)};
    EXPECT_TRUE(fd);
    EXPECT_EQ(::write(fd.get(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
    if (seals != 0)
      EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, seals), 0);
    return fd;
  }

  static constexpr int all_seals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;

  // Expects the connection closed with `code` and a reason containing `what`,
  // having delivered nothing.
  void expect_closed(errc code, const std::string& what) {
    ASSERT_TRUE(received->wait_closed());
    auto reason = received->reason();
    EXPECT_TRUE(is(reason, code)) << describe(reason);
    EXPECT_NE(describe(reason).find(what), std::string::npos)
      << describe(reason);
    EXPECT_NE(describe(reason).find("bad peer"), std::string::npos);
    EXPECT_TRUE(received->frames().empty());
  }

  size_t fds_before = 0;
  std::shared_ptr<reactor> io = std::make_shared<reactor>();
  unique_fd peer;
  std::shared_ptr<stream_connection> receiver;
  std::shared_ptr<recorder> received = std::make_shared<recorder>(io);
};

TEST_F(bulk_peer_test, a_bulk_frame_without_its_file) {
  send_raw(bulk_frame(100));
  expect_closed(errc::protocol_error, "bulk frame without its file");
}

TEST_F(bulk_peer_test, a_bulk_frame_with_a_short_body) {
  uint32_t size = 100;
  send_raw(make_frame(frame_kind::bulk, &size, sizeof(size)));
  expect_closed(errc::protocol_error, "not 8");
}

TEST_F(bulk_peer_test, a_file_not_sealed) {
  auto inner = make_frame("hello");
  auto file = memory_file(inner, F_SEAL_SHRINK | F_SEAL_GROW); // writable
  send_raw(bulk_frame(inner.size()), {file.get()});
  expect_closed(errc::protocol_error, "not a memory file sealed");
}

TEST_F(bulk_peer_test, a_descriptor_that_is_not_a_file) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  unique_fd r{pipe_fds[0]}, w{pipe_fds[1]};
  send_raw(bulk_frame(17), {r.get()});
  expect_closed(errc::protocol_error, "not a memory file sealed");
}

TEST_F(bulk_peer_test, a_file_of_another_size_than_announced) {
  auto inner = make_frame("hello");
  auto file = memory_file(inner, all_seals);
  send_raw(bulk_frame(inner.size() + 1), {file.get()});
  expect_closed(errc::protocol_error, "announced");
}

TEST_F(bulk_peer_test, a_file_whose_frame_has_a_bad_magic) {
  auto inner = make_frame("hello");
  inner[0] = std::byte{0};
  auto file = memory_file(inner, all_seals);
  send_raw(bulk_frame(inner.size()), {file.get()});
  expect_closed(errc::protocol_error, "bad magic");
}

TEST_F(bulk_peer_test, a_file_whose_frame_lies_about_its_length) {
  auto inner = make_frame("hello");
  inner[8] = std::byte{4}; // 4 body bytes, the file holds 5
  auto file = memory_file(inner, all_seals);
  send_raw(bulk_frame(inner.size()), {file.get()});
  expect_closed(errc::protocol_error, "says 4 body bytes");
}

TEST_F(bulk_peer_test, a_file_larger_than_the_frame_bound) {
  auto inner = pattern_frame(frame_header::size
                               + frame_header::default_max_body + 1,
                             1);
  auto file = memory_file(inner, all_seals);
  send_raw(bulk_frame(inner.size()), {file.get()});
  expect_closed(errc::frame_too_large, "frame bound");
}

TEST_F(bulk_peer_test, a_bulk_frame_inside_a_file) {
  auto inner = bulk_frame(20);
  auto file = memory_file(inner, all_seals);
  send_raw(bulk_frame(inner.size()), {file.get()});
  expect_closed(errc::protocol_error, "bulk frame inside");
}

TEST_F(bulk_peer_test, descriptors_beyond_the_bound_without_bulk_frames) {
  auto inner = make_frame("hello");
  auto file = memory_file(inner, all_seals);
  for (size_t i = 0; i <= socket_channel::max_pending_fds; ++i)
    send_raw(make_frame("small"), {file.get()});
  ASSERT_TRUE(received->wait_closed());
  EXPECT_NE(describe(received->reason()).find("descriptors not announced"),
            std::string::npos)
    << describe(received->reason());
}

TEST_F(bulk_peer_test, too_many_descriptors_at_once) {
  auto inner = make_frame("hello");
  auto file = memory_file(inner, all_seals);
  send_raw(make_frame("small"), std::vector<int>(8, file.get()));
  expect_closed(errc::protocol_error, "descriptors at once");
}

TEST_F(bulk_peer_test, a_good_file_is_delivered_and_closed) {
  auto inner = make_frame("hello from a file");
  {
    auto file = memory_file(inner, all_seals);
    send_raw(bulk_frame(inner.size()), {file.get()});
  }
  ASSERT_TRUE(received->wait_frames(1));
  EXPECT_EQ(text_of(received->frames()[0].body), "hello from a file");
  EXPECT_EQ(received->closed_count(), 0);
}

class bulk_without_fds_test : public bulk_peer_test {
protected:
  bool pass_fds() const override {
    return false;
  }
};

TEST_F(bulk_without_fds_test, a_bulk_frame_on_a_channel_without_descriptors) {
  send_raw(bulk_frame(100));
  expect_closed(errc::protocol_error, "cannot carry its file");
}

} // namespace
} // namespace relay
