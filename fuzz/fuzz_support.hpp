#pragma once

// Shared by the fuzz targets: taking fields off an input, cutting an input
// into frames the way a stream transport does (frame_header::read +
// check_framing), and a fake connection that lets a target drive a real
// peer of an in-process node.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "relay/error.hpp"
#include "relay/frame.hpp"
#include "relay/transport.hpp"

namespace relay::fuzz {

/// Takes fields off the front of a fuzz input, for targets whose input is
/// a list of operations.
struct reader {
  const uint8_t* p;
  size_t left;

  /// Copies the next `n` bytes to `out`; false (nothing taken) if fewer
  /// are left.
  bool take(void* out, size_t n) {
    if (left < n)
      return false;
    std::memcpy(out, p, n);
    p += n;
    left -= n;
    return true;
  }
};

/// Calls `f(header, body)` for each whole frame at the front of
/// [data, data + size) that passes check_framing(max_body), until `f`
/// returns false. Returns an empty string at the end of the input, or what
/// a stream transport would close the connection with: the framing error,
/// or "closed mid-frame". (The framing itself is fuzzed through the real
/// stream_connection by stream_fuzzer.cpp; this cuts the peer's input.)
template <class F>
std::string for_each_frame(const uint8_t* data, size_t size,
                           uint32_t max_body, F&& f) {
  size_t pos = 0;
  while (pos < size) {
    if (size - pos < frame_header::size)
      return "peer closed mid-frame";
    auto header = frame_header::read(
      reinterpret_cast<const std::byte*>(data + pos));
    if (auto why = header.check_framing(max_body); !why.empty())
      return why;
    auto total = frame_header::size + size_t{header.length};
    if (size - pos < total)
      return "peer closed mid-frame";
    if (!f(header, reinterpret_cast<const std::byte*>(data + pos
                                                      + frame_header::size)))
      return {};
    pos += total;
  }
  return {};
}

/// A connection that goes nowhere, keeping the transport contract
/// (relay/transport.hpp) where the peer depends on it: frames sent are
/// counted and dropped; after send_last, later frames go to the successor
/// and a second send_last is refused; close() is recorded and reported to
/// the handler by finish(), as a transport reports it after the current
/// callback; it cannot pause (pause_reading returns false, as a transport
/// that keeps reading); traffic() counts what was delivered, so the
/// heartbeat sees a live peer.
///
/// Thread rules: send(), send_last(), close(), traffic() from any thread;
/// the rest from the driving thread.
class fake_connection : public connection {
public:
  void start(std::shared_ptr<connection_handler> handler) override {
    handler_ = std::move(handler);
  }

  caf::error send(frame_buffer frame) override {
    successor next;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!successor_) {
        ++frames_out_;
        bytes_out_ += frame.size();
        return closed_ ? make_error(errc::connection_closed, "fake: closed")
                       : caf::error{};
      }
      next = successor_;
    }
    return next(std::move(frame));
  }

  caf::error send_last(frame_buffer frame, successor next) override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (successor_)
        return make_error(errc::connection_closed, "fake: send_last twice");
    }
    auto err = send(std::move(frame));
    std::lock_guard<std::mutex> guard{mtx_};
    successor_ = std::move(next);
    return err;
  }

  void close(const caf::error& reason, bool) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!closed_) {
      closed_ = true;
      reason_ = reason ? reason
                       : make_error(errc::connection_closed, "fake: closed");
    }
  }

  std::string peer_name() const override {
    return "fuzz:peer";
  }

  traffic_counters traffic() const noexcept override {
    std::lock_guard<std::mutex> guard{mtx_};
    traffic_counters result;
    result.frames_in = frames_in_;
    result.bytes_in = bytes_in_;
    result.frames_out = frames_out_;
    result.bytes_out = bytes_out_;
    return result;
  }

  bool closed() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return closed_;
  }

  /// Delivers a frame unless the connection was closed.
  void deliver(const frame_header& header, const std::byte* body) {
    if (closed() || !handler_)
      return;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      ++frames_in_;
      bytes_in_ += frame_header::size + header.length;
    }
    handler_->on_frame(*this, header, body);
    handler_->on_frames_end(*this);
  }

  /// Closes with `reason` (if nobody closed before) and reports on_closed
  /// once.
  void finish(const caf::error& reason) {
    close(reason, false);
    if (handler_) {
      caf::error why;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        why = reason_;
      }
      auto h = std::move(handler_);
      h->on_closed(*this, why);
    }
  }

private:
  mutable std::mutex mtx_;
  std::shared_ptr<connection_handler> handler_;
  successor successor_;
  bool closed_ = false;
  caf::error reason_;
  uint64_t frames_in_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t frames_out_ = 0;
  uint64_t bytes_out_ = 0;
};

} // namespace relay::fuzz
