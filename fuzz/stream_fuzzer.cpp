// The framing of a stream transport: a real stream_connection on a real
// reactor reads the input through a byte channel that hands it out either
// in chunks whose sizes the input chooses (bulk) or one byte at a time, cuts
// it into frames (header checks, length bound, partial frames, a hang-up
// mid-frame) and reports them and its close to a handler. The first byte
// picks the mode, the bound and whether the channel passes descriptors:
// then each bulk frame's file is made from the input where the frame was
// read (bulk_frame.hpp): a byte picks no descriptor, a pipe, or a memory
// file sealed or not, two bytes its size, then its contents.
//
// Seeds: fuzz/corpus/stream (fuzz/make_seeds.py).

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <future>
#include <memory>

#include "common/byte_channel.hpp"
#include "common/reactor.hpp"
#include "common/stream_connection.hpp"
#include "relay/log.hpp"

namespace {

// Hands out the input, then the end of the stream. Its descriptor is an
// eventfd that is always readable, so the reactor keeps calling read().
class input_channel : public relay::byte_channel {
public:
  input_channel(const uint8_t* data, size_t size, bool byte_wise,
                bool pass_fds)
    : data_(data, data + size),
      byte_wise_(byte_wise),
      pass_fds_(pass_fds),
      fd_(::eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC)) {
    // nop
  }

  int fd() const noexcept override {
    return fd_.get();
  }

  ssize_t read(void* buf, size_t len) override {
    if (pos_ == data_.size())
      return 0;
    size_t n = data_.size() - pos_;
    if (byte_wise_)
      n = 1;
    else if (n > 1) // chunk sizes come from the data itself
      n = 1 + (data_[pos_] % std::min<size_t>(n, 97)) * 13;
    n = std::min({n, len, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  // More right away while input remains (as shm's rings): the connection
  // reads on without going back to epoll, up to its bound per event.
  bool poll_more() override {
    return pos_ < data_.size();
  }

  ssize_t write(const iovec* iov, size_t count) override {
    ssize_t total = 0;
    for (size_t i = 0; i < count; ++i)
      total += static_cast<ssize_t>(iov[i].iov_len);
    return total;
  }

  bool passes_fds() const noexcept override {
    return pass_fds_;
  }

  relay::unique_fd take_fd() override {
    if (pos_ == data_.size())
      return relay::unique_fd{};
    auto variant = data_[pos_++] % 4;
    size_t len = 0;
    for (int i = 0; i < 2 && pos_ < data_.size(); ++i)
      len |= size_t{data_[pos_++]} << (8 * i);
    len = std::min(len, data_.size() - pos_);
    const uint8_t* contents = data_.data() + pos_;
    pos_ += len;
    switch (variant) {
      case 0:
        return relay::unique_fd{};
      case 1: {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
          return relay::unique_fd{};
        ::close(fds[1]);
        return relay::unique_fd{fds[0]};
      }
      default: {
        relay::unique_fd fd{
          ::memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING)};
        if (!fd || ::write(fd.get(), contents, len) != static_cast<ssize_t>(len))
          return relay::unique_fd{};
        int seals = F_SEAL_SHRINK | F_SEAL_GROW;
        if (variant == 2)
          seals |= F_SEAL_WRITE;
        ::fcntl(fd.get(), F_ADD_SEALS, seals);
        return fd;
      }
    }
  }

private:
  std::vector<uint8_t> data_;
  size_t pos_ = 0;
  bool byte_wise_;
  bool pass_fds_;
  relay::unique_fd fd_;
};

class handler : public relay::connection_handler {
public:
  void on_frame(relay::connection&, const relay::frame_header& h,
                const std::byte* body) override {
    // Touch every byte, so that ASan sees a body pointing outside the buffer.
    volatile uint8_t sum = 0;
    for (size_t i = 0; i < h.length; ++i)
      sum = sum + std::to_integer<uint8_t>(body[i]);
  }

  void on_closed(relay::connection&, const caf::error&) override {
    done.set_value();
  }

  std::promise<void> done;
};

std::shared_ptr<relay::reactor> reactor_instance;

std::shared_ptr<relay::reactor> io() {
  if (!reactor_instance) {
    relay::set_log_sink([](relay::log_level, const std::string&) {});
    reactor_instance = std::make_shared<relay::reactor>();
  }
  return reactor_instance;
}

} // namespace

// Joins the reactor's thread (see peer_fuzzer.cpp).
extern "C" void relay_fuzz_teardown() {
  reactor_instance.reset();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  relay::transport_options opts;
  opts.max_frame_body = (data[0] & 2) != 0 ? 64 : 1 << 20;
  auto chan = std::make_unique<input_channel>(
    data + 1, size - 1, (data[0] & 1) != 0, (data[0] & 4) != 0);
  auto conn = relay::stream_connection::make(io(), std::move(chan), "fuzz",
                                             opts);
  auto h = std::make_shared<handler>();
  auto done = h->done.get_future();
  conn->start(h);
  done.wait();
  return 0;
}
