// The session's resend buffer (session.hpp): small frames are copied into
// its ring, large ones kept as they are and handed to the connection with
// send_copy. Whatever the mix, a resume resends exactly the frames not
// acknowledged, in order and byte for byte; acknowledgements and the bound
// release them.

#include "session.hpp"

#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "relay/error.hpp"
#include "relay/frame_handler.hpp"

namespace relay {
namespace {

// Records what it is given, and how.
class recording_connection : public connection {
public:
  struct sent {
    frame_buffer frame;
    bool copied; // came through send_copy
  };

  void start(std::shared_ptr<connection_handler>) override {
    // nop
  }

  caf::error send(frame_buffer frame) override {
    std::lock_guard<std::mutex> guard{mtx};
    frames.push_back({std::move(frame), false});
    return caf::none;
  }

  caf::error send_copy(const frame_buffer& frame) override {
    std::lock_guard<std::mutex> guard{mtx};
    frames.push_back({frame, true});
    return caf::none;
  }

  caf::error send_last(frame_buffer frame, successor) override {
    return send(std::move(frame));
  }

  void close(const caf::error&, bool) override {
    // nop
  }

  std::string peer_name() const override {
    return "recording";
  }

  std::mutex mtx;
  std::vector<sent> frames;
};

// A message frame of `size` bytes in all whose bytes depend on `seed`.
frame_buffer frame_of(size_t size, uint8_t seed) {
  auto buf = begin_frame(size);
  buf.resize(size);
  for (size_t i = frame_header::size; i < size; ++i)
    buf[i] = static_cast<std::byte>((i + seed) & 0xff);
  finish_frame(buf, frame_kind::message);
  return buf;
}

constexpr size_t small = 100;
constexpr size_t large = 200 * 1024; // above session's large_frame

TEST(session, a_resume_resends_small_and_large_frames_in_order) {
  session s{64 << 20, 1};
  auto first = std::make_shared<recording_connection>();
  s.attach(first);
  std::vector<frame_buffer> sent;
  std::vector<size_t> sizes{small, large, small, small, large, large, small};
  uint8_t seed = 0;
  for (auto size : sizes) {
    sent.push_back(frame_of(size, ++seed));
    ASSERT_FALSE(s.send(sent.back()));
  }
  ASSERT_EQ(first->frames.size(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(first->frames[i].frame, sent[i]) << i;
    // Large frames are kept whole and lent to the connection.
    EXPECT_EQ(first->frames[i].copied, sizes[i] == large) << i;
  }
  size_t total = 0;
  for (auto size : sizes)
    total += size;
  EXPECT_EQ(s.kept_bytes(), total);
  // The first two arrived; the connection breaks; the rest goes again.
  ASSERT_FALSE(s.on_ack(2));
  EXPECT_EQ(s.kept_bytes(), total - small - large);
  s.suspend();
  auto second = std::make_shared<recording_connection>();
  auto resent = s.resume(second, 2, frame_buffer{});
  ASSERT_TRUE(resent);
  EXPECT_EQ(*resent, sizes.size() - 2);
  ASSERT_EQ(second->frames.size(), sizes.size() - 2);
  for (size_t i = 2; i < sizes.size(); ++i)
    EXPECT_EQ(second->frames[i - 2].frame, sent[i]) << i;
  // Everything acknowledged: nothing kept.
  ASSERT_FALSE(s.on_ack(sizes.size()));
  EXPECT_EQ(s.kept_bytes(), 0u);
}

TEST(session, frames_while_suspended_go_out_on_resume) {
  session s{64 << 20, 1};
  s.attach(std::make_shared<recording_connection>());
  s.suspend();
  auto a = frame_of(large, 1);
  auto b = frame_of(small, 2);
  ASSERT_FALSE(s.send(a));
  ASSERT_FALSE(s.send(b));
  auto next = std::make_shared<recording_connection>();
  ASSERT_TRUE(s.resume(next, 0, frame_buffer{}));
  ASSERT_EQ(next->frames.size(), 2u);
  EXPECT_EQ(next->frames[0].frame, a);
  EXPECT_EQ(next->frames[1].frame, b);
}

TEST(session, the_bound_evicts_the_oldest_frames_small_or_large) {
  // Room for two large frames and a little more.
  session s{2 * large + 3 * small, 1};
  auto conn = std::make_shared<recording_connection>();
  s.attach(conn);
  ASSERT_FALSE(s.send(frame_of(small, 1)));
  ASSERT_FALSE(s.send(frame_of(large, 2)));
  ASSERT_FALSE(s.send(frame_of(large, 3)));
  EXPECT_EQ(s.kept_bytes(), small + 2 * large);
  ASSERT_FALSE(s.send(frame_of(large, 4))); // evicts frames 1 and 2
  EXPECT_EQ(s.kept_bytes(), 2 * large);
  s.suspend();
  // The remote dispatched frame 1 only: frame 2 is gone.
  auto lost = s.resume(std::make_shared<recording_connection>(), 1,
                       frame_buffer{});
  ASSERT_FALSE(lost);
  EXPECT_TRUE(is(lost.error(), errc::session_lost)) << describe(lost.error());
  // It dispatched frame 2 as well: frames 3 and 4 go again.
  auto next = std::make_shared<recording_connection>();
  auto resent = s.resume(next, 2, frame_buffer{});
  ASSERT_TRUE(resent);
  EXPECT_EQ(*resent, 2u);
  ASSERT_EQ(next->frames.size(), 2u);
  EXPECT_EQ(next->frames[0].frame, frame_of(large, 3));
  EXPECT_EQ(next->frames[1].frame, frame_of(large, 4));
}

TEST(session, a_frame_over_the_bound_is_sent_but_not_kept) {
  session s{large / 2, 1};
  auto conn = std::make_shared<recording_connection>();
  s.attach(conn);
  ASSERT_FALSE(s.send(frame_of(small, 1)));
  ASSERT_FALSE(s.send(frame_of(large, 2)));
  ASSERT_EQ(conn->frames.size(), 2u);
  EXPECT_EQ(conn->frames[1].frame, frame_of(large, 2));
  EXPECT_EQ(s.kept_bytes(), 0u); // and what came before is useless now
}

} // namespace
} // namespace relay
