#include "relay/frame.hpp"

#include <gtest/gtest.h>

#include "relay/error.hpp"
#include "relay/transport.hpp"

using namespace relay;

TEST(frame_header, round_trips_every_field) {
  frame_header in;
  in.kind = frame_kind::lookup_reply;
  in.flags = 0;
  in.length = 0x01020304;
  std::byte buf[frame_header::size];
  in.write(buf);
  auto out = frame_header::read(buf);
  EXPECT_EQ(out.magic, frame_header::magic_value);
  EXPECT_EQ(out.version, frame_header::current_version);
  EXPECT_EQ(out.kind, frame_kind::lookup_reply);
  EXPECT_EQ(out.length, 0x01020304u);
  // Little endian on the wire: the length's low byte comes first.
  EXPECT_EQ(std::to_integer<int>(buf[8]), 0x04);
  EXPECT_EQ(std::to_integer<int>(buf[0]), 'R');
  EXPECT_EQ(std::to_integer<int>(buf[3]), 'Y');
}

TEST(frame_header, check_framing_rejects_bad_magic_and_oversize) {
  frame_header h;
  h.length = 100;
  EXPECT_EQ(h.check_framing(100), "");
  EXPECT_NE(h.check_framing(99).find("exceeds the bound of 99"),
            std::string::npos);
  h.magic = 0xdeadbeef;
  EXPECT_NE(h.check_framing(100).find("bad magic 0xdeadbeef"),
            std::string::npos);
}

TEST(endpoint, parses_scheme_and_rest) {
  auto ep = endpoint::parse("uds:///run/a.sock");
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->scheme, "uds");
  EXPECT_EQ(ep->rest, "///run/a.sock");
  auto abstract = endpoint::parse("uds:@name");
  ASSERT_TRUE(abstract);
  EXPECT_EQ(abstract->rest, "@name");
}

TEST(endpoint, rejects_malformed_uris_with_a_clear_error) {
  for (auto uri : {"", "no-scheme", ":x", "UDS:///a", "uds:"}) {
    auto ep = endpoint::parse(uri);
    ASSERT_FALSE(ep) << uri;
    EXPECT_TRUE(is(ep.error(), errc::invalid_uri)) << uri;
    EXPECT_NE(describe(ep.error()).find("invalid_uri"), std::string::npos);
  }
}
