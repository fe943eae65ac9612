#pragma once

// POSIX message queues as Relay uses them: names, checked opening, and the
// rendezvous messages of the mq:// transport.
//
// The rendezvous (docs/mq.md has the whole design):
//
//   listener   owns the accept queue NAME (0600, 64-byte messages) and
//              holds an exclusive flock(2) on it while it lives;
//   client     creates its pair NAME@<pid>@<token>.up (client -> server)
//              and NAME@<pid>@<token>.dn (server -> client), 0600, O_EXCL,
//              then sends a request to the accept queue:
//                32 bytes: "RLYQ" u32, version u8 = 1, 3 bytes 0,
//                          pid u32, token 16 ASCII hex digits, u32 0
//   listener   opens the pair, checks owner, mode and sizes, opens a pidfd
//              for the pid, unlinks both names and answers on .dn:
//                16 bytes: "RLYQ" u32, version u8, status u8 (0 accepted,
//                          1 refused), u16 0, listener pid u32, u32 0
//   both       from then on the queues carry the byte stream in messages of
//              at most the queue's message size, priority 0; an empty
//              message ends the stream (see mq_channel.hpp).
//
// All integers little-endian. Linux's mqd_t is a file descriptor, so
// unique_fd owns a queue descriptor, and fstat, flock and epoll work on it.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>

#include "common/socket_util.hpp"
#include "relay/error.hpp"
#include "relay/transport.hpp"

namespace relay::mq {

constexpr uint32_t magic = 0x51594c52; // "RLYQ" read as little-endian u32
constexpr uint8_t version = 1;
constexpr size_t request_size = 32;
constexpr size_t reply_size = 16;
constexpr size_t token_size = 16;

/// Message size and depth of the accept queue.
constexpr long accept_message_size = 64;
constexpr long accept_depth = 10;

/// Bounds a listener enforces on the queues a client created: what it
/// allocates per connection follows from them.
constexpr long min_message_size = 128;
constexpr long max_message_size = 1 << 20;
constexpr long max_depth = 65536;

/// A listener's queue name: "/" followed by 1 to max_name_length
/// characters of [A-Za-z0-9._-] (room is left for the pair's suffixes
/// within NAME_MAX).
struct address {
  static constexpr size_t max_name_length = 200;

  /// "/name", as mq_open takes it.
  std::string name;

  /// Parses `ep.rest`, which must be "///name" (mq:///name). Errors
  /// (errc::invalid_uri naming ep.text): another form, an empty or too long
  /// name, a character outside the set above.
  static caf::expected<address> parse(const endpoint& ep);

  /// "mq:///name".
  std::string uri() const;

  /// The names of a client's pair: NAME@<pid>@<token>.up and .dn ('@' is
  /// in no listener's name, so a request can only name a pair).
  std::string up(uint32_t pid, const std::string& token) const;
  std::string down(uint32_t pid, const std::string& token) const;
};

/// Queue sizes, from relay.mq.message-size and relay.mq.max-messages.
struct geometry {
  long message_size = 8192;
  long depth = 10;
};

/// Why a queue cannot be used, or the empty string: owned by another user
/// than the effective uid, open to group or others, not a message queue,
/// or sizes outside the bounds above (`accept`: the accept queue's fixed
/// sizes instead). Reads the queue's inode and attributes.
std::string check_queue(int fd, bool accept);

/// Creates queue `name` (O_CREAT | O_EXCL, mode 0600, non-blocking) with
/// `g`, for reading or writing. Errors (`code`, naming `who`) explain the
/// usual refusals: the per-user RLIMIT_MSGQUEUE, fs.mqueue.msg_max and
/// msgsize_max, fs.mqueue.queues_max. On failure errno is mq_open's.
caf::expected<unique_fd> create_queue(const std::string& name, geometry g,
                                      bool for_reading, errc code,
                                      const std::string& who);

/// Opens existing queue `name` non-blocking and checks it (check_queue).
/// Errors: `code` naming `who`, with the errno text or the check's reason.
caf::expected<unique_fd> open_queue(const std::string& name, bool for_reading,
                                    bool accept, errc code,
                                    const std::string& who);

/// mq_unlink, ignoring a name already gone.
void unlink_queue(const std::string& name) noexcept;

/// A pidfd for `pid` (pidfd_open(2)): readable once the process has exited.
/// Empty with errno on failure (ESRCH: no such process).
unique_fd open_pidfd(pid_t pid) noexcept;

/// 16 random lowercase hex digits (getrandom(2)).
std::string random_token();

struct request {
  uint32_t pid = 0;
  std::string token;
};

void write_request(const request& req, uint8_t (&out)[request_size]);

/// Parses `len` bytes from the accept queue; the empty string or why not.
std::string read_request(const uint8_t* data, size_t len, request& out);

struct reply {
  bool accepted = false;
  uint32_t pid = 0;
};

void write_reply(const reply& rep, uint8_t (&out)[reply_size]);

/// Parses `len` bytes, the first message on .dn; the empty string or why
/// not.
std::string read_reply(const uint8_t* data, size_t len, reply& out);

} // namespace relay::mq
