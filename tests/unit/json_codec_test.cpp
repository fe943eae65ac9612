// Message types that opt into JSON (relay/json_codec.hpp): their own
// cereal serialize function read and written as JSON, and text that does
// not fit refused with the reason.

#include "relay/json_codec.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

namespace json_codec_test {

struct order {
  uint64_t id = 0;
  std::string item;
  std::vector<int32_t> sizes;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(id), CEREAL_NVP(item), CEREAL_NVP(sizes));
  }
};

} // namespace json_codec_test

RELAY_MESSAGE_TYPE(json_codec_test::order, "json_codec_test.order")

namespace {

using json_codec_test::order;

TEST(json_codec, writes_and_reads_named_fields) {
  auto codec = relay::json_codec_for<order>();
  ASSERT_TRUE(codec);
  order x{7, "tea", {1, 2}};
  EXPECT_EQ(nlohmann::json::parse(codec.to_json(&x)),
            nlohmann::json::parse(R"({"id":7,"item":"tea","sizes":[1,2]})"));
  auto msg = codec.from_json(R"({"item": "coffee", "id": 9, "sizes": []})");
  ASSERT_TRUE(msg.match_elements<order>());
  EXPECT_EQ(msg.get_as<order>(0).id, 9u);
  EXPECT_EQ(msg.get_as<order>(0).item, "coffee");
}

TEST(json_codec, refuses_text_that_does_not_fit) {
  auto codec = relay::json_codec_for<order>();
  for (auto text : {R"({"id": "seven", "item": "x", "sizes": []})",
                    R"({"item": "x", "sizes": []})", R"({"id": 1)", "[]",
                    R"({"id": 1, "item": "x", "sizes": []} trailing)", ""})
    EXPECT_THROW(codec.from_json(text), std::invalid_argument) << text;
}

TEST(json_codec, registration_keeps_the_codec) {
  relay::message_registry reg;
  ASSERT_FALSE(reg.add<order>("json_codec_test.order",
                              relay::json_codec_for<order>()));
  auto info = reg.find_name("json_codec_test.order");
  ASSERT_NE(info, nullptr);
  EXPECT_TRUE(info->json);
  EXPECT_EQ(reg.find_name("json_codec_test.other"), nullptr);
}

} // namespace
