#include "common/bulk_frame.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/error.hpp"

namespace relay {

namespace {

constexpr int required_seals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;

} // namespace

caf::expected<bulk_out> make_bulk(const frame_buffer& frame,
                                  const std::string& peer) {
  auto fail = [&peer](const char* doing) -> caf::expected<bulk_out> {
    return make_errno_error(errc::connection_closed, peer, errno,
                            std::string{"cannot send a large frame as a "
                                        "memory file: "}
                              + doing);
  };
  unique_fd file{::memfd_create("relay-bulk", MFD_CLOEXEC | MFD_ALLOW_SEALING)};
  if (!file)
    return fail("memfd_create");
  // write(2) rather than a mapping: the kernel fills new pages whole, so
  // they are not zeroed first, and no writable mapping blocks the seal.
  size_t done = 0;
  while (done < frame.size()) {
    auto n = ::write(file.get(), frame.data() + done, frame.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return fail("write");
    }
    done += static_cast<size_t>(n);
  }
  if (::fcntl(file.get(), F_ADD_SEALS, required_seals | F_SEAL_SEAL) != 0)
    return fail("seal");
  bulk_out result;
  result.file = std::move(file);
  frame_header header;
  header.kind = frame_kind::bulk;
  header.length = bulk_body_size;
  result.frame.resize(frame_header::size + bulk_body_size);
  header.write(result.frame.data());
  uint64_t size = frame.size();
  for (size_t i = 0; i < bulk_body_size; ++i)
    result.frame[frame_header::size + i]
      = static_cast<std::byte>((size >> (8 * i)) & 0xff);
  return result;
}

bool read_bulk_size(const std::byte* body, uint32_t length, uint64_t& size) {
  if (length != bulk_body_size)
    return false;
  size = 0;
  for (size_t i = 0; i < bulk_body_size; ++i)
    size |= uint64_t{std::to_integer<uint8_t>(body[i])} << (8 * i);
  return true;
}

bulk_in bulk_in::open(unique_fd file, uint64_t size, uint32_t max_body,
                      errc& code, std::string& error) {
  bulk_in result;
  code = errc::protocol_error;
  // Seals first: once F_SEAL_SHRINK is seen, the size read next cannot
  // drop under the mapping (a peer could otherwise shrink the file between
  // the two checks, and reading the mapping would fault with SIGBUS).
  // Only memory files support seals; anything else fails F_GET_SEALS or
  // reports F_SEAL_SEAL alone.
  auto seals = ::fcntl(file.get(), F_GET_SEALS);
  if (seals < 0 || (seals & required_seals) != required_seals) {
    error = "bulk file is not a memory file sealed against writing, "
            "shrinking and growing";
    return result;
  }
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) {
    error = "bulk file: fstat failed: " + errno_text(errno);
    return result;
  }
  if (!S_ISREG(st.st_mode)) {
    error = "bulk file is not a memory file (not a regular file)";
    return result;
  }
  if (static_cast<uint64_t>(st.st_size) != size) {
    error = "bulk file holds " + std::to_string(st.st_size)
            + " bytes, the bulk frame announced " + std::to_string(size);
    return result;
  }
  if (size < frame_header::size
      || size - frame_header::size > uint64_t{max_body}) {
    if (size >= frame_header::size)
      code = errc::frame_too_large;
    error = "bulk frame of " + std::to_string(size)
            + " bytes is outside 12 bytes and the frame bound of "
            + std::to_string(max_body) + " bytes plus 12";
    return result;
  }
  auto len = static_cast<size_t>(size);
  // MAP_POPULATE: the pages exist (the sender wrote them); map them in one
  // go instead of one fault per page.
  void* base = ::mmap(nullptr, len, PROT_READ, MAP_SHARED | MAP_POPULATE,
                      file.get(), 0);
  if (base == MAP_FAILED) {
    error = "bulk file: mmap of " + std::to_string(len)
            + " bytes failed: " + errno_text(errno);
    return result;
  }
  result.base_ = static_cast<const std::byte*>(base);
  result.size_ = len;
  // The mapping keeps the file; the descriptor closes with `file`.
  result.header_ = frame_header::read(result.base_);
  if (auto why = result.header_.check_framing(max_body); !why.empty()) {
    if (result.header_.magic == frame_header::magic_value)
      code = errc::frame_too_large;
    error = "frame in bulk file: " + why;
    return bulk_in{};
  }
  if (result.header_.length != len - frame_header::size) {
    error = "frame in bulk file says " + std::to_string(result.header_.length)
            + " body bytes, the file holds "
            + std::to_string(len - frame_header::size);
    return bulk_in{};
  }
  if (result.header_.kind == frame_kind::bulk) {
    error = "bulk frame inside a bulk file";
    return bulk_in{};
  }
  return result;
}

bulk_in::bulk_in(bulk_in&& other) noexcept
  : base_(std::exchange(other.base_, nullptr)),
    size_(std::exchange(other.size_, 0)),
    header_(other.header_) {
  // nop
}

bulk_in& bulk_in::operator=(bulk_in&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr)
      ::munmap(const_cast<std::byte*>(base_), size_);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    header_ = other.header_;
  }
  return *this;
}

bulk_in::~bulk_in() {
  if (base_ != nullptr)
    ::munmap(const_cast<std::byte*>(base_), size_);
}

} // namespace relay
