#include "shm/shm_region.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "relay/error.hpp"

namespace relay {

shm_mapping::shm_mapping(shm_mapping&& other) noexcept
  : base_(std::exchange(other.base_, nullptr)),
    size_(std::exchange(other.size_, 0)) {
  // nop
}

shm_mapping& shm_mapping::operator=(shm_mapping&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr)
      ::munmap(base_, size_);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

shm_mapping::~shm_mapping() {
  if (base_ != nullptr)
    ::munmap(base_, size_);
}

caf::expected<unique_fd> create_region(size_t capacity, errc code,
                                       const std::string& who) {
  unique_fd fd{::memfd_create("relay-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING)};
  if (!fd)
    return make_errno_error(code, who, errno, "memfd_create");
  auto size = shm_layout::region_size(capacity);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
    return make_errno_error(code, who, errno, "ftruncate");
  if (::fcntl(fd.get(), F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
      < 0)
    return make_errno_error(code, who, errno, "sealing the region");
  return fd;
}

caf::expected<shm_mapping> map_region(int fd, size_t capacity, errc code,
                                      const std::string& who,
                                      bool verify_seals) {
  if (!shm_layout::valid_capacity(capacity))
    return make_error(code, who + ": invalid ring capacity "
                              + std::to_string(capacity));
  auto size = shm_layout::region_size(capacity);
  struct stat st{};
  if (::fstat(fd, &st) < 0)
    return make_errno_error(code, who, errno, "fstat of the region");
  if (!S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) != size)
    return make_error(code, who + ": the region has "
                              + std::to_string(st.st_size) + " bytes, expected "
                              + std::to_string(size));
  if (verify_seals) {
    auto seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0)
      return make_error(code, who + ": the region is not a sealable memfd");
    if ((seals & F_SEAL_SHRINK) == 0)
      return make_error(code, who + ": the region is not sealed against "
                                    "shrinking");
  }
  auto* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED)
    return make_errno_error(code, who, errno, "mmap of the region");
  return shm_mapping{static_cast<std::byte*>(base), size};
}

} // namespace relay
