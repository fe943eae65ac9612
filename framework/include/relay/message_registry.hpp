#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <typeindex>
#include <unordered_map>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/error.hpp>
#include <caf/message.hpp>
#include <caf/message_builder.hpp>
#include <caf/rtti_pair.hpp>
#include <caf/type_nr.hpp>

#include "relay/actor_handles.hpp"
#include "relay/wire_types.hpp"
#include "relay/wire_archive.hpp"

namespace relay {

/// The stable name of message type `T`, declared by RELAY_MESSAGE_TYPE.
template <class T>
struct type_name;

/// The JSON form of a message type, for tools (see relay/json_codec.hpp,
/// which makes one from the type's serialize function). Both null for
/// types that did not opt in.
struct json_codec {
  /// The value at `ptr` (a `const T*`) as a JSON value.
  std::string (*to_json)(const void* ptr) = nullptr;
  /// A message of one `T` read from JSON text. Throws
  /// std::invalid_argument with the reason for text that does not fit.
  caf::message (*from_json)(const std::string& text) = nullptr;

  explicit operator bool() const noexcept {
    return to_json != nullptr && from_json != nullptr;
  }
};

/// Everything Relay knows about one message type.
struct message_type_info {
  /// Stable name, e.g. "my.ping"; the same in every process.
  std::string name;
  /// Wire id: 64-bit FNV-1a of `name`.
  uint64_t id = 0;
  /// Writes the value at `ptr` (a `const T*`).
  void (*save)(wire_writer& ar, const void* ptr) = nullptr;
  /// Reads one value and wraps it in a message of one element.
  caf::message (*load_single)(wire_reader& ar) = nullptr;
  /// Reads one value and appends it to `builder`.
  void (*load_append)(wire_reader& ar, caf::message_builder& builder) = nullptr;
  /// A system message (exit_msg, down_msg): one an untrusted peer may not
  /// send, because it can stop or mislead the receiver.
  bool system = false;
  /// Set if the type opted into JSON at registration.
  json_codec json;
};

/// Maps C++ message types to stable names and wire ids, and back.
///
/// Thread rules: add() only while configuring, before the node starts; all
/// const member functions are safe to call concurrently afterwards.
class message_registry {
public:
  /// Limit on the length of a type name.
  static constexpr size_t max_name_length = 256;

  /// Creates a registry that already knows the built-in types (integers,
  /// floating point, bool, std::string, caf::atom_value, actor handles,
  /// caf::error, exit_msg, down_msg, byte buffers, string vectors, durations).
  message_registry();

  /// Returns the wire id of `name` (64-bit FNV-1a).
  static uint64_t id_of(const std::string& name) noexcept;

  /// Registers `T` under `name`. Errors (errc::already_registered): `T` or
  /// `name` is already registered, or another name hashes to the same id.
  /// (errc::invalid_argument): empty or overlong name. `json`: the type's
  /// JSON form, if it opts in (relay/json_codec.hpp).
  template <class T>
  caf::error add(std::string name, json_codec json = {}) {
    static_assert(std::is_default_constructible<T>::value,
                  "message types must be default constructible");
    auto info = std::make_unique<message_type_info>();
    info->name = std::move(name);
    info->json = json;
    info->save = [](wire_writer& ar, const void* ptr) {
      ar(*static_cast<const T*>(ptr));
    };
    info->load_single = [](wire_reader& ar) {
      T value;
      ar(value);
      return caf::make_message(std::move(value));
    };
    info->load_append = [](wire_reader& ar, caf::message_builder& builder) {
      T value;
      ar(value);
      builder.append(std::move(value));
    };
    return add_impl(std::move(info), caf::type_nr<T>::value, typeid(T));
  }

  /// Looks up the type of a message element, as reported by
  /// `caf::message::type(i)`. Returns nullptr if not registered.
  const message_type_info* find(const caf::rtti_pair& type) const noexcept;

  /// Looks up a wire id. Returns nullptr if not registered.
  const message_type_info* find(uint64_t id) const noexcept;

  /// Looks up a type by its registered name. Returns nullptr if not
  /// registered.
  const message_type_info* find_name(const std::string& name) const noexcept;

  /// Looks up a C++ type. Returns nullptr if not registered.
  template <class T>
  const message_type_info* find() const noexcept {
    constexpr auto nr = caf::type_nr<T>::value;
    return find(caf::rtti_pair{nr, nr == 0 ? &typeid(T) : nullptr});
  }

  /// Name of `T` for interface descriptions: the registered name, or
  /// "<unregistered:typeid-name>".
  template <class T>
  std::string name_of() const {
    if (auto info = find<T>())
      return info->name;
    return std::string{"<unregistered:"} + typeid(T).name() + ">";
  }

private:
  caf::error add_impl(std::unique_ptr<message_type_info> info, uint16_t nr,
                      const std::type_info& type);

  std::vector<std::unique_ptr<message_type_info>> types_;
  std::unordered_map<uint64_t, const message_type_info*> by_id_;
  std::unordered_map<std::type_index, const message_type_info*> by_type_;
  // The same by the address of the type_info: hashing a pointer is cheap,
  // hashing the type's name (type_index) is not; by_type_ is the fallback
  // for a type_info object that another shared library has its own copy of.
  std::unordered_map<const std::type_info*, const message_type_info*>
    by_type_info_;
  std::array<const message_type_info*, caf::type_nrs> by_nr_{};
};

} // namespace relay

/// Declares `T` as a Relay message type with the stable name `NAME`. Use at
/// global scope, before `T` is first sent; then register it at run time with
/// `cfg.add_message_type<T>()`. `T` needs a cereal `serialize` function (or
/// save/load pair), a default constructor and a copy constructor.
#define RELAY_MESSAGE_TYPE(T, NAME)                                            \
  CAF_ALLOW_UNSAFE_MESSAGE_TYPE(T)                                             \
  namespace relay {                                                            \
  template <>                                                                  \
  struct type_name<T> {                                                        \
    static constexpr const char* value = NAME;                                 \
  };                                                                           \
  }
