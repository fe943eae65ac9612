// The frame-kind table, the reject-code mapping and the rate limit of log
// lines a peer can provoke.

#include <gtest/gtest.h>

#include "rate_limited_log.hpp"
#include "relay/error.hpp"
#include "relay/frame_handler.hpp"
#include "test_support.hpp"
#include "wire.hpp"

using namespace relay;

TEST(frame_table, dispatches_by_kind_and_refuses_clashes) {
  frame_table t;
  int calls = 0;
  auto h = [&](peer_context&, wire_reader&) { ++calls; };
  EXPECT_FALSE(t.add(64, "test", h));
  ASSERT_NE(t.find(64), nullptr);
  EXPECT_EQ(t.find(65), nullptr);
  EXPECT_EQ(t.name_of(64), "test");
  EXPECT_EQ(t.name_of(65), "kind 65");
  auto err = t.add(64, "other", h);
  EXPECT_TRUE(is(err, errc::already_registered));
  EXPECT_NE(describe(err).find("'test'"), std::string::npos);
}

TEST(frame_table, handshake_kinds_and_empty_handlers_are_refused) {
  frame_table t;
  auto h = [](peer_context&, wire_reader&) {};
  EXPECT_TRUE(is(t.add(0, "x", h), errc::invalid_argument));
  EXPECT_TRUE(is(t.add(static_cast<uint8_t>(frame_kind::hello), "x", h),
                 errc::invalid_argument));
  EXPECT_TRUE(is(t.add(static_cast<uint8_t>(frame_kind::reject), "x", h),
                 errc::invalid_argument));
  EXPECT_TRUE(is(t.add(70, "x", frame_handler{}), errc::invalid_argument));
}

TEST(reject_codes, every_code_of_this_version_maps_to_itself) {
  for (int code = 1; code <= static_cast<int>(errc_last); ++code) {
    auto e = wire::reject_code_to_errc(static_cast<uint8_t>(code));
    EXPECT_EQ(static_cast<int>(e), code);
    EXPECT_STRNE(to_string(e), "unknown") << code;
  }
  EXPECT_EQ(wire::reject_code_to_errc(0), errc::handshake_failed);
  EXPECT_EQ(wire::reject_code_to_errc(static_cast<uint8_t>(errc_last) + 1),
            errc::handshake_failed);
  EXPECT_EQ(wire::reject_code_to_errc(255), errc::handshake_failed);
}

TEST(rate_limited_log, passes_a_burst_then_counts_what_it_suppresses) {
  relay::test::log_capture logs;
  rate_limited_log limiter{3, std::chrono::hours{1}};
  for (int i = 0; i < 1000; ++i)
    limiter.log(log_level::warning, "k", "line " + std::to_string(i));
  limiter.log(log_level::warning, "other", "another key");
  auto dump = logs.dump();
  EXPECT_EQ(std::count(dump.begin(), dump.end(), '\n'), 4) << dump;
  EXPECT_EQ(limiter.suppressed(), 997u);
}

TEST(rate_limited_log, says_how_many_were_suppressed_when_lines_pass_again) {
  relay::test::log_capture logs;
  rate_limited_log limiter{1, std::chrono::milliseconds{0}};
  // A zero window starts a new window with every line: all pass.
  limiter.log(log_level::warning, "k", "a");
  limiter.log(log_level::warning, "k", "b");
  EXPECT_EQ(limiter.suppressed(), 0u);
  rate_limited_log strict{1, std::chrono::hours{1}};
  strict.log(log_level::warning, "k", "first");
  strict.log(log_level::warning, "k", "second");
  EXPECT_EQ(strict.suppressed(), 1u);
  // Once the window has passed, the next line says what was suppressed.
  auto now = std::chrono::steady_clock::time_point{};
  rate_limited_log clocked{1, std::chrono::seconds{1}, [&] { return now; }};
  clocked.log(log_level::warning, "k", "one");
  clocked.log(log_level::warning, "k", "two");
  clocked.log(log_level::warning, "k", "three");
  now += std::chrono::seconds{1};
  clocked.log(log_level::warning, "k", "four");
  EXPECT_TRUE(logs.wait_for({"four (2 similar lines suppressed)"},
                            std::chrono::milliseconds{0}))
    << logs.dump();
}
