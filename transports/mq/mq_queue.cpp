#include "mq/mq_queue.hpp"

#include <fcntl.h>
#include <mqueue.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <system_error>

#include "common/byte_order.hpp"

namespace relay::mq {

namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
         || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

std::string read_sysctl(const char* path) {
  std::ifstream in{path};
  std::string value;
  if (!(in >> value))
    return "?";
  return value;
}

// What an mq_open failure means here, beyond strerror.
std::string explain(int err, geometry g) {
  auto bytes = std::to_string(g.message_size * g.depth);
  switch (err) {
    case EMFILE: {
      rlimit lim{};
      ::getrlimit(RLIMIT_MSGQUEUE, &lim);
      auto limit = lim.rlim_cur == RLIM_INFINITY
                     ? std::string{"unlimited"}
                     : std::to_string(lim.rlim_cur) + " bytes";
      return " (the user's message-queue memory, RLIMIT_MSGQUEUE = " + limit
             + ", `ulimit -q`, is used up, or so are the process's "
               "descriptors; each connection holds two queues of about "
             + bytes
             + " bytes: raise the limit or lower relay.mq.max-messages or "
               "relay.mq.message-size)";
    }
    case EINVAL:
      return " (relay.mq.max-messages " + std::to_string(g.depth)
             + " or relay.mq.message-size " + std::to_string(g.message_size)
             + " exceeds what an unprivileged process may ask for: "
               "fs.mqueue.msg_max = "
             + read_sysctl("/proc/sys/fs/mqueue/msg_max")
             + ", fs.mqueue.msgsize_max = "
             + read_sysctl("/proc/sys/fs/mqueue/msgsize_max") + ")";
    case ENOSPC:
      return " (the system's number of queues, fs.mqueue.queues_max = "
             + read_sysctl("/proc/sys/fs/mqueue/queues_max")
             + ", is used up)";
    default:
      return {};
  }
}

} // namespace

caf::expected<address> address::parse(const endpoint& ep) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::invalid_uri, ep.text + ": " + why);
  };
  if (ep.scheme != "mq")
    return bad("not an mq:// URI");
  if (ep.rest.compare(0, 3, "///") != 0)
    return bad("expected mq:///name (a queue name, no host part)");
  auto name = ep.rest.substr(3);
  if (name.empty())
    return bad("empty queue name");
  if (name.size() > max_name_length)
    return bad("queue name longer than " + std::to_string(max_name_length)
               + " characters");
  for (char c : name)
    if (!name_char(c))
      return bad("queue names take only letters, digits, '.', '_' and '-'");
  if (name == "." || name == "..")
    return bad("'" + name + "' is not a queue name");
  return address{"/" + name};
}

std::string address::uri() const {
  return "mq://" + name;
}

std::string address::up(uint32_t pid, const std::string& token) const {
  return name + "@" + std::to_string(pid) + "@" + token + ".up";
}

std::string address::down(uint32_t pid, const std::string& token) const {
  return name + "@" + std::to_string(pid) + "@" + token + ".dn";
}

std::string check_queue(int fd, bool accept) {
  struct stat st{};
  if (::fstat(fd, &st) != 0)
    return std::string{"fstat: "} + std::strerror(errno);
  if (st.st_uid != ::geteuid())
    return "owned by uid " + std::to_string(st.st_uid) + ", not "
           + std::to_string(::geteuid());
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
    return std::string{"open to other users (mode "} + mode + ", not 0600)";
  }
  mq_attr attr{};
  if (::mq_getattr(fd, &attr) != 0)
    return std::string{"not a message queue: "} + std::strerror(errno);
  if (accept) {
    if (attr.mq_msgsize != accept_message_size)
      return "message size " + std::to_string(attr.mq_msgsize) + ", not "
             + std::to_string(accept_message_size);
    return {};
  }
  if (attr.mq_msgsize < min_message_size || attr.mq_msgsize > max_message_size)
    return "message size " + std::to_string(attr.mq_msgsize)
           + " is outside [" + std::to_string(min_message_size) + ", "
           + std::to_string(max_message_size) + "]";
  if (attr.mq_maxmsg < 1 || attr.mq_maxmsg > max_depth)
    return "depth " + std::to_string(attr.mq_maxmsg) + " is outside [1, "
           + std::to_string(max_depth) + "]";
  return {};
}

caf::expected<unique_fd> create_queue(const std::string& name, geometry g,
                                      bool for_reading, errc code,
                                      const std::string& who) {
  mq_attr attr{};
  attr.mq_maxmsg = g.depth;
  attr.mq_msgsize = g.message_size;
  auto flags = O_CREAT | O_EXCL | O_NONBLOCK | (for_reading ? O_RDONLY
                                                             : O_WRONLY);
  auto fd = ::mq_open(name.c_str(), flags, 0600, &attr);
  if (fd < 0) {
    auto err = errno;
    auto result = make_error(code, who + ": creating message queue " + name
                                     + ": " + std::strerror(err)
                                     + explain(err, g));
    errno = err; // for callers that tell EEXIST from the rest
    return result;
  }
  return unique_fd{fd};
}

caf::expected<unique_fd> open_queue(const std::string& name, bool for_reading,
                                    bool accept, errc code,
                                    const std::string& who) {
  auto fd = ::mq_open(name.c_str(),
                      O_NONBLOCK | (for_reading ? O_RDONLY : O_WRONLY));
  if (fd < 0)
    return make_errno_error(code, who, errno, "opening message queue " + name);
  unique_fd result{fd};
  if (auto why = check_queue(fd, accept); !why.empty())
    return make_error(code, who + ": message queue " + name + " is " + why);
  return result;
}

void unlink_queue(const std::string& name) noexcept {
  ::mq_unlink(name.c_str());
}

unique_fd open_pidfd(pid_t pid) noexcept {
  return unique_fd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
}

std::string random_token() {
  uint8_t raw[token_size / 2];
  size_t got = 0;
  while (got < sizeof(raw)) {
    auto n = ::getrandom(raw + got, sizeof(raw) - got, 0);
    if (n > 0)
      got += static_cast<size_t>(n);
    else if (n < 0 && errno != EINTR)
      throw std::system_error{errno, std::generic_category(), "getrandom"};
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string token;
  for (auto b : raw) {
    token += digits[b >> 4];
    token += digits[b & 15];
  }
  return token;
}

void write_request(const request& req, uint8_t (&out)[request_size]) {
  std::memset(out, 0, sizeof(out));
  put_le32(out, magic);
  out[4] = version;
  put_le32(out + 8, req.pid);
  std::memcpy(out + 12, req.token.data(),
              std::min(req.token.size(), token_size));
}

std::string read_request(const uint8_t* data, size_t len, request& out) {
  if (len != request_size)
    return "a request of " + std::to_string(len) + " bytes, not "
           + std::to_string(request_size);
  if (get_le32(data) != magic)
    return "bad magic in the request";
  if (data[4] != version)
    return "rendezvous version " + std::to_string(data[4]) + ", this node "
           + std::to_string(version);
  if (data[5] != 0 || data[6] != 0 || data[7] != 0 || get_le32(data + 28) != 0)
    return "reserved bytes are not zero";
  out.pid = get_le32(data + 8);
  if (out.pid == 0 || out.pid > 0x3fffffff)
    return "pid " + std::to_string(out.pid) + " is not a process id";
  out.token.assign(reinterpret_cast<const char*>(data + 12), token_size);
  for (char c : out.token)
    if (!hex_digit(c))
      return "the token is not 16 lowercase hex digits";
  return {};
}

void write_reply(const reply& rep, uint8_t (&out)[reply_size]) {
  std::memset(out, 0, sizeof(out));
  put_le32(out, magic);
  out[4] = version;
  out[5] = rep.accepted ? 0 : 1;
  put_le32(out + 8, rep.pid);
}

std::string read_reply(const uint8_t* data, size_t len, reply& out) {
  if (len != reply_size || get_le32(data) != magic)
    return "malformed rendezvous reply";
  if (data[4] != version)
    return "the listener speaks rendezvous version " + std::to_string(data[4])
           + ", this node " + std::to_string(version);
  if (data[5] > 1)
    return "unknown status " + std::to_string(data[5]) + " in the reply";
  if (data[6] != 0 || data[7] != 0 || get_le32(data + 12) != 0)
    return "reserved bytes in the reply are not zero";
  out.accepted = data[5] == 0;
  out.pid = get_le32(data + 8);
  if (out.accepted && (out.pid == 0 || out.pid > 0x3fffffff))
    return "pid " + std::to_string(out.pid) + " is not a process id";
  return {};
}

} // namespace relay::mq
