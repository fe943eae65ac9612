#include "uds/uds_peer.hpp"

#include <cerrno>

#include <sys/socket.h>
#include <unistd.h>

#include "common/socket_util.hpp"

namespace relay {

caf::expected<uds_peer> uds_peer::of(int fd, errc code,
                                     const std::string& uri) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return make_errno_error(code, uri, errno,
                            "cannot read peer credentials (SO_PEERCRED)");
  return uds_peer{cred.pid, cred.uid, cred.gid};
}

std::string uds_peer::describe(const std::string& uri) const {
  return uri + " (pid " + std::to_string(pid) + ", uid " + std::to_string(uid)
         + ")";
}

std::string uds_peer::check_uid(const transport_options& options) const {
  auto own = ::geteuid();
  if (uid == own || options.allow_other_uids)
    return {};
  return "uid differs from " + std::to_string(own);
}

} // namespace relay
