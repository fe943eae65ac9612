#pragma once

// Opting a message type into JSON, for tools (relayctl call) that build
// messages from text and print answers: the type's own cereal serialize
// function, run through cereal's JSON archives, so nothing describes the
// type twice. Include this header only where types opt in; the JSON
// archive is a large header.

#include <sstream>
#include <stdexcept>
#include <string>

#include <cereal/archives/json.hpp>

#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "relay/message_registry.hpp"

namespace relay {

/// The JSON form of message type `T`, for node_config::add_message_type(
/// name, json_codec_for<T>()). A struct whose serialize function names its
/// fields (`ar(CEREAL_NVP(seq), CEREAL_NVP(payload))`) reads and writes
/// `{"seq": 1, "payload": "hi"}`; unnamed fields are value0, value1, ...
/// (cereal's rule). Names do not change the binary wire form.
///
/// to_json writes JSON text (one value; whitespace unspecified).
/// from_json throws std::invalid_argument with cereal's reason for text that is not JSON or does not fit `T` (a missing field,
/// a string for a number). Both functions are thread-safe.
template <class T>
json_codec json_codec_for() {
  json_codec result;
  result.to_json = [](const void* ptr) {
    std::ostringstream out;
    {
      cereal::JSONOutputArchive ar{out,
                                   cereal::JSONOutputArchive::Options::NoIndent()};
      ar(cereal::make_nvp("value", *static_cast<const T*>(ptr)));
    }
    // The archive wraps the value in {"value": ...}; strip the wrapper.
    auto text = out.str();
    auto begin = text.find(':');
    auto end = text.rfind('}');
    if (begin == std::string::npos || end == std::string::npos || end <= begin)
      return text;
    return text.substr(begin + 1, end - begin - 1);
  };
  result.from_json = [](const std::string& text) {
    try {
      // cereal reads the root as an object of members; wrap the value.
      std::istringstream in{"{\"value\": " + text + "}"};
      cereal::JSONInputArchive ar{in};
      T value;
      ar(cereal::make_nvp("value", value));
      return caf::make_message(std::move(value));
    } catch (const cereal::RapidJSONException& ex) {
      // rapidjson's check of a value's type: name the problem instead.
      throw std::invalid_argument(
        std::string{"a field is missing or has the wrong JSON type, or the "
                    "text is not one JSON object ("}
        + ex.what() + ")");
    } catch (const std::exception& ex) {
      throw std::invalid_argument(ex.what());
    }
  };
  return result;
}

} // namespace relay
