#pragma once

// JSON text that crosses a process boundary (the introspection service,
// its sources and relayctl), read and written without trusting it:
// nesting is bounded before anything recurses over it, and text that is
// not valid UTF-8 (a peer's node name, say) is written with U+FFFD instead
// of making nlohmann-json throw. Needs nlohmann-json (link
// nlohmann_json::nlohmann_json); not included by Relay's public headers.

#include <string>

#include <nlohmann/json.hpp>

namespace relay::detail {

/// Deepest nesting accepted from a peer (objects and arrays).
constexpr int max_json_depth = 64;

/// Parses `text`. Throws nlohmann::json::exception for text that is not
/// JSON, and std::invalid_argument for nesting deeper than max_json_depth
/// (parsing is iterative; dumping and cereal's reader recurse).
inline nlohmann::json parse_json(const std::string& text) {
  bool too_deep = false;
  auto doc = nlohmann::json::parse(
    text, [&too_deep](int depth, nlohmann::json::parse_event_t,
                      nlohmann::json&) {
      if (depth > max_json_depth)
        too_deep = true;
      return !too_deep;
    });
  if (too_deep)
    throw std::invalid_argument("JSON nested deeper than "
                                + std::to_string(max_json_depth) + " levels");
  return doc;
}

/// Compact text of `doc`; invalid UTF-8 in its strings becomes U+FFFD.
inline std::string json_text(const nlohmann::json& doc) {
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// As json_text, indented by 2 (for people).
inline std::string json_text_indented(const nlohmann::json& doc) {
  return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace relay::detail
