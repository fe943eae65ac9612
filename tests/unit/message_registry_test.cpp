#include "relay/message_registry.hpp"

#include <gtest/gtest.h>

#include <cereal/types/string.hpp>

#include "relay/error.hpp"
#include "relay/node_config.hpp"

namespace test_types {

struct alpha {
  std::string text;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(text);
  }
};

struct beta {
  int32_t value = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value);
  }
};

} // namespace test_types

RELAY_MESSAGE_TYPE(test_types::alpha, "test.alpha")
RELAY_MESSAGE_TYPE(test_types::beta, "test.beta")

using namespace relay;

TEST(message_registry, wire_id_is_fnv1a_of_the_name) {
  // Reference values of 64-bit FNV-1a.
  EXPECT_EQ(message_registry::id_of(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(message_registry::id_of("a"), 0xaf63dc4c8601ec8cull);
}

TEST(message_registry, knows_builtin_types) {
  message_registry reg;
  ASSERT_NE(reg.find<std::string>(), nullptr);
  EXPECT_EQ(reg.find<std::string>()->name, "string");
  EXPECT_EQ(reg.find<int32_t>()->name, "i32");
  EXPECT_EQ(reg.find<caf::actor>()->name, "actor");
  EXPECT_EQ(reg.find(message_registry::id_of("i64")), reg.find<int64_t>());
}

TEST(message_registry, registers_user_types_by_name) {
  message_registry reg;
  ASSERT_FALSE(reg.add<test_types::alpha>("test.alpha"));
  auto info = reg.find<test_types::alpha>();
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->id, message_registry::id_of("test.alpha"));
  EXPECT_EQ(reg.find(info->id), info);
}

TEST(message_registry, refuses_a_name_used_twice) {
  message_registry reg;
  ASSERT_FALSE(reg.add<test_types::alpha>("test.same"));
  auto err = reg.add<test_types::beta>("test.same");
  ASSERT_TRUE(err);
  EXPECT_TRUE(is(err, errc::already_registered));
  EXPECT_NE(describe(err).find("test.same"), std::string::npos);
}

TEST(message_registry, refuses_a_type_registered_twice) {
  message_registry reg;
  ASSERT_FALSE(reg.add<test_types::alpha>("test.one"));
  auto err = reg.add<test_types::alpha>("test.two");
  ASSERT_TRUE(err);
  EXPECT_NE(describe(err).find("already registered as 'test.one'"),
            std::string::npos);
}

TEST(message_registry, refuses_empty_and_overlong_names) {
  message_registry reg;
  EXPECT_TRUE(is(reg.add<test_types::alpha>(""), errc::invalid_argument));
  EXPECT_TRUE(is(reg.add<test_types::alpha>(std::string(300, 'x')),
                 errc::invalid_argument));
}

TEST(node_config, add_message_type_throws_on_a_clash) {
  node_config cfg;
  cfg.add_message_type<test_types::alpha>();
  EXPECT_THROW(cfg.add_message_type<test_types::beta>("test.alpha"),
               registration_error);
  EXPECT_NE(cfg.messages().find<test_types::alpha>(), nullptr);
}

TEST(message_registry, round_trips_a_registered_message) {
  message_registry reg;
  ASSERT_FALSE(reg.add<test_types::alpha>("test.alpha"));
  auto msg = caf::make_message(test_types::alpha{"hi"});
  auto info = reg.find(msg.type(0));
  ASSERT_NE(info, nullptr);
  std::vector<std::byte> buf;
  wire_writer out{buf};
  info->save(out, msg.get(0));
  wire_reader in{buf.data(), buf.size()};
  auto copy = info->load_single(in);
  ASSERT_TRUE(copy.match_elements<test_types::alpha>());
  EXPECT_EQ(copy.get_as<test_types::alpha>(0).text, "hi");
}
