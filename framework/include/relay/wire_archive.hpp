#pragma once

// Relay's cereal archives: a compact little-endian binary format whose
// reader checks every length against the bytes that remain, so a peer can
// never make it read out of bounds or allocate more than a frame can hold.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <cereal/cereal.hpp>

namespace relay {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the wire format is little endian; add byte swapping to "
              "wire_archive.hpp before porting to a big-endian host");

class codec_context;

/// Thrown by wire_reader when input is malformed (too short, a length larger
/// than what remains, an invalid bool). Caught by the framework, which turns
/// it into a protocol error for that one connection.
class wire_error : public cereal::Exception {
public:
  using cereal::Exception::Exception;
};

/// Writes values to a byte vector. `context` resolves actor handles; it may
/// be null when no handle is written.
class wire_writer
  : public cereal::OutputArchive<wire_writer, cereal::AllowEmptyClassElision> {
public:
  wire_writer(std::vector<std::byte>& out, codec_context* context = nullptr)
    : OutputArchive(this), out_(out), context_(context) {
    // nop
  }

  void save_bytes(const void* data, size_t size) {
    auto first = static_cast<const std::byte*>(data);
    out_.insert(out_.end(), first, first + size);
  }

  codec_context* context() const noexcept {
    return context_;
  }

  std::vector<std::byte>& buffer() noexcept {
    return out_;
  }

private:
  std::vector<std::byte>& out_;
  codec_context* context_;
};

/// Reads values from a byte range, checking every read against its end.
class wire_reader
  : public cereal::InputArchive<wire_reader, cereal::AllowEmptyClassElision> {
public:
  wire_reader(const std::byte* first, size_t size,
              codec_context* context = nullptr)
    : InputArchive(this), pos_(first), end_(first + size), context_(context) {
    // nop
  }

  void load_bytes(void* data, size_t size) {
    if (size > remaining())
      throw wire_error("truncated input: need " + std::to_string(size)
                       + " bytes, " + std::to_string(remaining())
                       + " remain");
    if (size == 0)
      return; // data may be null (an empty vector)
    memcpy(data, pos_, size);
    pos_ += size;
  }

  /// Checks a length read from the peer before anything is allocated for it:
  /// every element takes at least one byte on the wire, except in
  /// containers of empty types, which are bounded by `max_empty_elements`.
  void check_size(uint64_t size) const {
    if (size > remaining() && size > max_empty_elements)
      throw wire_error("length " + std::to_string(size) + " exceeds the "
                       + std::to_string(remaining()) + " bytes that remain");
  }

  size_t remaining() const noexcept {
    return static_cast<size_t>(end_ - pos_);
  }

  /// Consumes `size` bytes and returns where they start, in place.
  const std::byte* take(size_t size) {
    if (size > remaining())
      throw wire_error("truncated input: need " + std::to_string(size)
                       + " bytes, " + std::to_string(remaining())
                       + " remain");
    auto result = pos_;
    pos_ += size;
    return result;
  }

  const std::byte* position() const noexcept {
    return pos_;
  }

  codec_context* context() const noexcept {
    return context_;
  }

  /// Bound on container sizes of zero-byte elements.
  static constexpr uint64_t max_empty_elements = 4096;

private:
  const std::byte* pos_;
  const std::byte* end_;
  codec_context* context_;
};

// -- arithmetic types ---------------------------------------------------------

template <class T>
std::enable_if_t<std::is_arithmetic<T>::value>
CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const T& x) {
  if constexpr (std::is_same<T, bool>::value) {
    uint8_t tmp = x ? 1 : 0;
    ar.save_bytes(&tmp, 1);
  } else {
    ar.save_bytes(&x, sizeof(T));
  }
}

template <class T>
std::enable_if_t<std::is_arithmetic<T>::value>
CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, T& x) {
  if constexpr (std::is_same<T, bool>::value) {
    uint8_t tmp = 0;
    ar.load_bytes(&tmp, 1);
    if (tmp > 1)
      throw wire_error("invalid bool value " + std::to_string(tmp));
    x = tmp == 1;
  } else {
    ar.load_bytes(&x, sizeof(T));
  }
}

// -- cereal's wrappers ----------------------------------------------------------

template <class Archive, class T>
CEREAL_ARCHIVE_RESTRICT(wire_reader, wire_writer)
CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& x) {
  ar(x.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar, const cereal::SizeTag<T>& x) {
  auto size = static_cast<uint64_t>(x.size);
  ar.save_bytes(&size, sizeof(size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, cereal::SizeTag<T>& x) {
  uint64_t size = 0;
  ar.load_bytes(&size, sizeof(size));
  ar.check_size(size);
  x.size = static_cast<std::remove_reference_t<T>>(size);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(wire_writer& ar,
                               const cereal::BinaryData<T>& x) {
  ar.save_bytes(x.data, static_cast<size_t>(x.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar, cereal::BinaryData<T>& x) {
  ar.load_bytes(x.data, static_cast<size_t>(x.size));
}

// -- strings --------------------------------------------------------------------

/// Same encoding as cereal's (u64 size, bytes), but one copy straight out
/// of the frame: cereal's own load zero-fills the string first (a memset
/// of every payload byte on the receive path).
template <class Traits, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(wire_reader& ar,
                               std::basic_string<char, Traits, Alloc>& str) {
  uint64_t size = 0;
  ar.load_bytes(&size, sizeof(size));
  auto bytes = ar.take(static_cast<size_t>(size)); // checks the length
  str.assign(reinterpret_cast<const char*>(bytes), static_cast<size_t>(size));
}

} // namespace relay

CEREAL_REGISTER_ARCHIVE(relay::wire_writer)
CEREAL_REGISTER_ARCHIVE(relay::wire_reader)
CEREAL_SETUP_ARCHIVE_TRAITS(relay::wire_reader, relay::wire_writer)
