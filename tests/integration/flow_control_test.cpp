// Flow control over real processes: a fast sender floods a slow receiver
// for 10 s over each transport, with the default bounds. Both processes'
// peak resident memory stays under a bound, and every message is accounted
// for: received + dropped (counted) + failed requests = sent.

#include <cstdlib>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "child_process.hpp"
#include "test_support.hpp"

using namespace relay::test;
using namespace std::chrono_literals;

namespace {

// Each process's peak RSS: the node (~15 MiB) plus the default bounds
// (16 MiB queued out, 16 MiB of unprocessed messages in, which take more
// room in memory than on the wire) plus the kernel's and the read
// buffers' share. With both bounds set out of reach, 3 s of this flood
// took the sink to 440 MiB, and growing (measured when this was written).
constexpr uint64_t rss_bound_kib = 160 * 1024;

std::map<std::string, uint64_t> parse_result(const std::string& line) {
  std::map<std::string, uint64_t> result;
  std::istringstream in{line.substr(line.find(' ') + 1)};
  for (std::string field; in >> field;) {
    auto eq = field.find('=');
    if (eq != std::string::npos)
      result[field.substr(0, eq)] = std::stoull(field.substr(eq + 1));
  }
  return result;
}

class flow_control : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    setenv("RELAY_COOKIE", "flow-control-test-secret-0123456789", 1);
  }

  std::string listen_uri() const {
    if (GetParam() == "tcp")
      return "tcp://127.0.0.1:0";
    return GetParam() + "://" + dir.path() + "/sink.sock";
  }

  temp_dir dir;
};

TEST_P(flow_control, a_flooded_slow_receiver_bounds_memory_and_loses_nothing_unaccounted) {
  child sink{{RELAY_FLOOD, "sink", listen_uri(), "--work-us", "20"}};
  auto line = sink.read_line(10s);
  ASSERT_TRUE(line && line->rfind("listening ", 0) == 0)
    << (line ? *line : "(nothing)");
  auto uri = line->substr(10);
  child sender{{RELAY_FLOOD, "send", uri, "--seconds", "10", "--payload",
                "1024", "--request-every", "16"}};
  auto result = sender.read_line(60s);
  ASSERT_TRUE(result && result->rfind("result ", 0) == 0)
    << (result ? *result : "(nothing)");
  std::cout << "[ figures  ] " << GetParam() << ": " << *result << "\n";
  auto r = parse_result(*result);
  // Every message is delivered or accounted for.
  EXPECT_EQ(r["received"] + r["overload_drops"] + r["failed"], r["sent"]);
  EXPECT_EQ(r["acked"] + r["failed"], r["requests"]);
  EXPECT_EQ(r["other_errors"], 0u);
  EXPECT_EQ(r["other_drops"], 0u);
#if defined(__SANITIZE_ADDRESS__)
  std::cout << "[ note     ] under ASan only the accounting is checked\n";
#else
  // The flood was real: the bound was hit, on both sides. (Under ASan the
  // sender may be too slow to fill loopback tcp's buffers.)
  EXPECT_GT(r["overload_drops"], 0u);
  EXPECT_GT(r["failed"], 0u);
  EXPECT_GT(r["sink_pauses"], 0u);
  EXPECT_GT(r["received"], 10000u);
  // Memory stayed bounded. (Not under ASan: its quarantine keeps up to
  // 256 MiB of freed memory resident by design, and shadow memory adds
  // more.)
  EXPECT_LT(r["sender_rss_kib"], rss_bound_kib);
  EXPECT_LT(r["sink_rss_kib"], rss_bound_kib);
#endif
}

INSTANTIATE_TEST_SUITE_P(over, flow_control,
                         ::testing::Values("uds", "tcp", "shm"),
                         [](const auto& info) { return info.param; });

} // namespace
