#include "relay/message_registry.hpp"

#include <cereal/types/chrono.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <caf/system_messages.hpp>
#include <caf/timespan.hpp>
#include <caf/timestamp.hpp>
#include <caf/unit.hpp>

#include "relay/error.hpp"

// Wire forms of CAF's own types that user messages and system messages use.
namespace relay {

codec_context::~codec_context() = default;

// caf::error: code, category, and the context as text (a single string
// context, as Relay's errors carry, crosses unchanged; any other context is
// rendered to text, since its element types may not be registered).
void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const caf::error& x) {
  if (!x) {
    ar(uint8_t{0}, uint64_t{0}, std::string{});
    return;
  }
  uint8_t code = x.code();
  auto category = static_cast<uint64_t>(x.category());
  std::string text;
  const auto& ctx = x.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    text = ctx.get_as<std::string>(0);
  else if (!ctx.empty())
    text = caf::to_string(ctx);
  ar(code, category, text);
}

void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::error& x) {
  uint8_t code = 0;
  uint64_t category = 0;
  std::string text;
  ar(code, category, text);
  if (code == 0)
    x = caf::error{};
  else if (text.empty())
    x = caf::error{code, static_cast<caf::atom_value>(category)};
  else
    x = caf::error{code, static_cast<caf::atom_value>(category),
                   caf::make_message(std::move(text))};
}

void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const caf::exit_msg& x) {
  ar(x.source, x.reason);
}

void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::exit_msg& x) {
  ar(x.source, x.reason);
}

void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const caf::down_msg& x) {
  ar(x.source, x.reason);
}

void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::down_msg& x) {
  ar(x.source, x.reason);
}

void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const caf::timestamp& x) {
  int64_t ns = x.time_since_epoch().count();
  ar(ns);
}

void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, caf::timestamp& x) {
  int64_t ns = 0;
  ar(ns);
  x = caf::timestamp{caf::timestamp::duration{ns}};
}

namespace {

// 64-bit FNV-1a.
constexpr uint64_t fnv_offset = 0xcbf29ce484222325ull;
constexpr uint64_t fnv_prime = 0x100000001b3ull;

} // namespace

uint64_t message_registry::id_of(const std::string& name) noexcept {
  uint64_t hash = fnv_offset;
  for (unsigned char c : name) {
    hash ^= c;
    hash *= fnv_prime;
  }
  return hash;
}

message_registry::message_registry() {
  // Names of built-in types are part of the wire protocol; see
  // docs/wire-protocol.md. Registration cannot clash here.
  add<bool>("bool");
  add<int8_t>("i8");
  add<int16_t>("i16");
  add<int32_t>("i32");
  add<int64_t>("i64");
  add<long long>("i64ll");
  add<uint8_t>("u8");
  add<uint16_t>("u16");
  add<uint32_t>("u32");
  add<uint64_t>("u64");
  add<unsigned long long>("u64ll");
  add<float>("f32");
  add<double>("f64");
  add<std::string>("string");
  add<std::vector<char>>("bytes");
  add<std::vector<std::string>>("strings");
  add<std::map<std::string, std::string>>("string_map");
  add<std::set<std::string>>("string_set");
  add<caf::atom_value>("atom");
  add<caf::actor>("actor");
  add<caf::actor_addr>("actor_addr");
  add<caf::strong_actor_ptr>("actor_ptr");
  add<caf::error>("error");
  add<caf::exit_msg>("exit_msg");
  add<caf::down_msg>("down_msg");
  add<caf::unit_t>("unit");
  add<caf::timespan>("timespan");
  add<caf::timestamp>("timestamp");
  for (auto& info : types_)
    info->system = info->name == "exit_msg" || info->name == "down_msg";
}

caf::error message_registry::add_impl(std::unique_ptr<message_type_info> info,
                                      uint16_t nr,
                                      const std::type_info& type) {
  if (info->name.empty() || info->name.size() > max_name_length)
    return make_error(errc::invalid_argument,
                      "message type names must have 1 to "
                        + std::to_string(max_name_length) + " characters, got '"
                        + info->name + "'");
  info->id = id_of(info->name);
  auto existing = nr != 0 ? by_nr_[nr] : nullptr;
  if (nr == 0) {
    auto i = by_type_.find(std::type_index{type});
    if (i != by_type_.end())
      existing = i->second;
  }
  if (existing != nullptr)
    return make_error(errc::already_registered,
                      "type is already registered as '" + existing->name
                        + "', cannot register it again as '" + info->name
                        + "'");
  if (auto i = by_id_.find(info->id); i != by_id_.end()) {
    if (i->second->name == info->name)
      return make_error(errc::already_registered,
                        "name '" + info->name
                          + "' is already used by another type");
    return make_error(errc::already_registered,
                      "names '" + info->name + "' and '" + i->second->name
                        + "' have the same wire id; rename one");
  }
  const message_type_info* ptr = info.get();
  types_.push_back(std::move(info));
  by_id_.emplace(ptr->id, ptr);
  if (nr != 0)
    by_nr_[nr] = ptr;
  else {
    by_type_.emplace(std::type_index{type}, ptr);
    by_type_info_.emplace(&type, ptr);
  }
  return caf::none;
}

const message_type_info*
message_registry::find(const caf::rtti_pair& type) const noexcept {
  if (type.first != 0)
    return type.first < by_nr_.size() ? by_nr_[type.first] : nullptr;
  if (type.second == nullptr)
    return nullptr;
  if (auto i = by_type_info_.find(type.second); i != by_type_info_.end())
    return i->second;
  auto i = by_type_.find(std::type_index{*type.second});
  return i != by_type_.end() ? i->second : nullptr;
}

const message_type_info* message_registry::find(uint64_t id) const noexcept {
  auto i = by_id_.find(id);
  return i != by_id_.end() ? i->second : nullptr;
}

const message_type_info*
message_registry::find_name(const std::string& name) const noexcept {
  // By id, then by name: two names never share an id (add checks).
  auto info = find(id_of(name));
  return info != nullptr && info->name == name ? info : nullptr;
}

} // namespace relay
