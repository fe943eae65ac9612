#include "relay/wire_archive.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <cereal/types/chrono.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

using namespace relay;

namespace {

struct sample {
  int32_t i = 0;
  bool flag = false;
  double d = 0;
  std::string text;
  std::vector<uint16_t> numbers;
  std::map<std::string, std::vector<std::string>> nested;
  std::optional<std::string> maybe;
  std::variant<int, std::string> either;
  std::chrono::milliseconds timeout{0};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(i, flag, d, text, numbers, nested, maybe, either, timeout);
  }

  bool operator==(const sample& o) const {
    return i == o.i && flag == o.flag && d == o.d && text == o.text
           && numbers == o.numbers && nested == o.nested && maybe == o.maybe
           && either == o.either && timeout == o.timeout;
  }
};

template <class T>
std::vector<std::byte> save(const T& x) {
  std::vector<std::byte> buf;
  wire_writer out{buf};
  out(x);
  return buf;
}

template <class T>
T load(const std::vector<std::byte>& buf) {
  T result;
  wire_reader in{buf.data(), buf.size()};
  in(result);
  EXPECT_EQ(in.remaining(), 0u);
  return result;
}

} // namespace

TEST(wire_archive, round_trips_std_types) {
  sample x;
  x.i = -42;
  x.flag = true;
  x.d = 3.25;
  x.text = "hello";
  x.numbers = {1, 2, 65535};
  x.nested = {{"a", {"x", "y"}}, {"b", {}}};
  x.maybe = "present";
  x.either = std::string{"right"};
  x.timeout = std::chrono::milliseconds{1500};
  EXPECT_EQ(load<sample>(save(x)), x);
}

TEST(wire_archive, integers_are_little_endian) {
  auto buf = save(uint32_t{0x11223344});
  ASSERT_EQ(buf.size(), 4u);
  EXPECT_EQ(std::to_integer<int>(buf[0]), 0x44);
}

TEST(wire_archive, truncated_input_throws) {
  auto buf = save(std::string{"hello world"});
  buf.resize(buf.size() - 1);
  EXPECT_THROW(load<std::string>(buf), wire_error);
}

TEST(wire_archive, length_beyond_input_throws_before_allocating) {
  std::vector<std::byte> buf;
  wire_writer out{buf};
  out(cereal::make_size_tag(uint64_t{1} << 40)); // claims a terabyte
  EXPECT_THROW(load<std::string>(buf), wire_error);
  EXPECT_THROW(load<std::vector<uint64_t>>(buf), wire_error);
}

TEST(wire_archive, strings_load_in_place_with_a_checked_length) {
  // Relay's own string load (one copy, no zero-fill), not cereal's.
  std::vector<std::byte> buf;
  wire_writer out{buf};
  out(cereal::make_size_tag(uint64_t{1} << 40));
  try {
    load<std::string>(buf);
    ADD_FAILURE() << "no exception";
  } catch (wire_error& ex) {
    EXPECT_NE(std::string{ex.what()}.find("need 1099511627776 bytes"),
              std::string::npos)
      << ex.what();
  }
  EXPECT_EQ(load<std::string>(save(std::string(5000, 'q'))),
            std::string(5000, 'q'));
}

TEST(wire_archive, invalid_bool_throws) {
  std::vector<std::byte> buf{std::byte{2}};
  EXPECT_THROW(load<bool>(buf), wire_error);
}

TEST(wire_archive, invalid_variant_index_throws) {
  std::vector<std::byte> buf;
  wire_writer out{buf};
  out(int32_t{7}); // cereal writes the index as int32
  EXPECT_ANY_THROW((load<std::variant<int, std::string>>(buf)));
}
