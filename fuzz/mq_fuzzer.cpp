// The mq channel's reading while a hostile peer puts any message into its
// queue (any length up to the queue's message size, any priority, empty
// ones), interleaved with reads of any size, writes and readiness checks;
// and the rendezvous parsers on raw bytes. The input is a list of
// operations.
//
// Checked beyond "no crash, no sanitizer report": the bytes read() returns
// are exactly the non-empty priority-0 messages in order, up to the first
// empty message (the end) or the first violation; read() returns 0 only
// after all of them, fails with EPROTO only after a violation went in, and
// never returns more than asked.
//
// Seeds: fuzz/corpus/mq (fuzz/make_seeds.py).

#include <fcntl.h>
#include <mqueue.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mq/mq_channel.hpp"
#include "mq/mq_queue.hpp"
#include "fuzz_support.hpp"
#include "relay/log.hpp"

namespace {

constexpr long message_size = 256;

// One queue, opened for both directions; unlinked at once.
int make_queue(const char* tag) {
  auto name = std::string{"/relay-fuzz-"} + std::to_string(::getpid()) + tag;
  mq_attr attr{};
  attr.mq_maxmsg = 10;
  attr.mq_msgsize = message_size;
  auto fd = ::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK,
                      0600, &attr);
  ::mq_unlink(name.c_str());
  if (fd < 0)
    std::abort();
  return fd;
}

void drain(int fd) {
  char buf[message_size];
  while (::mq_receive(fd, buf, sizeof(buf), nullptr) >= 0) {
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int rx = [] {
    relay::set_log_sink([](relay::log_level, const std::string&) {});
    return make_queue("-rx");
  }();
  static int tx = make_queue("-tx");
  drain(rx);
  drain(tx);
  auto chan = relay::mq_channel::make(relay::unique_fd{::dup(rx)},
                                      relay::unique_fd{::dup(tx)},
                                      relay::unique_fd{}, {}, "fuzz");
  if (!chan)
    std::abort();
  relay::fuzz::reader in{data, size};
  std::string expected; // what read() may still return, in order
  bool ended = false;   // the end or a violation went in
  bool closed = false;  // read() returned 0 or EPROTO
  uint8_t op = 0;
  while (in.take(&op, 1)) {
    switch (op % 5) {
      case 0: { // the peer sends a message
        uint8_t prio = 0;
        uint8_t len = 0;
        if (!in.take(&prio, 1) || !in.take(&len, 1))
          return 0;
        char body[message_size] = {};
        auto n = std::min<size_t>(len, in.left);
        in.take(body, n);
        prio = prio < 200 ? 0 : prio % 4; // mostly valid
        if (::mq_send(rx, body, n, prio) != 0)
          break; // full
        if (!ended) {
          if (prio != 0 || n == 0)
            ended = true;
          else
            expected.append(body, n);
        }
        break;
      }
      case 1: { // we read
        uint16_t len = 0;
        if (!in.take(&len, 2))
          return 0;
        len = static_cast<uint16_t>(len % 1024 + 1);
        char buf[1024];
        (*chan)->on_ready(0);
        auto n = (*chan)->read(buf, len);
        if (n > static_cast<ssize_t>(len))
          std::abort();
        if (n > 0) {
          if (closed
              || expected.compare(0, static_cast<size_t>(n), buf,
                                  static_cast<size_t>(n))
                   != 0)
            std::abort(); // bytes that were never sent, or out of order
          expected.erase(0, static_cast<size_t>(n));
        } else if (n == 0) {
          if (!ended || !expected.empty())
            std::abort(); // an end that was not there, or data lost
          closed = true;
        } else if (errno == EPROTO) {
          // A message with a priority jumps the queue: data sent before it
          // may still be unread.
          if (!ended)
            std::abort(); // a violation that was not there
          closed = true;
        } else if (errno != EAGAIN) {
          std::abort();
        }
        break;
      }
      case 2: { // we write
        uint16_t len = 0;
        if (!in.take(&len, 2))
          return 0;
        static char zeros[4096];
        iovec iov[2] = {{zeros, static_cast<size_t>(len % 1000)},
                        {zeros, static_cast<size_t>(len % 4096)}};
        (*chan)->write(iov, 2);
        drain(tx);
        break;
      }
      case 3: { // interest changes
        uint8_t mask = 0;
        if (!in.take(&mask, 1))
          return 0;
        (*chan)->watch((mask & 1 ? 0x001u : 0u) | (mask & 2 ? 0x004u : 0u));
        break;
      }
      case 4: { // the rendezvous parsers
        uint8_t len = 0;
        if (!in.take(&len, 1))
          return 0;
        uint8_t bytes[64] = {};
        auto n = std::min<size_t>(len % 65, in.left);
        in.take(bytes, n);
        relay::mq::request req;
        relay::mq::read_request(bytes, n, req);
        relay::mq::reply rep;
        relay::mq::read_reply(bytes, n, rep);
        break;
      }
    }
  }
  return 0;
}
