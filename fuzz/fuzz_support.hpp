#pragma once

// Shared by the fuzz targets: cutting an input into frames the way a stream
// transport does (frame_header::read + check_framing), and a fake
// connection that lets a target drive a real peer of an in-process node.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "relay/error.hpp"
#include "relay/frame.hpp"
#include "relay/transport.hpp"

namespace relay::fuzz {

/// Calls `f(header, body)` for each whole frame at the front of
/// [data, data + size) that passes check_framing(max_body); stops at the
/// first that does not or at a partial frame. Returns the bytes consumed.
template <class F>
size_t for_each_frame(const uint8_t* data, size_t size, uint32_t max_body,
                      F&& f) {
  size_t pos = 0;
  while (size - pos >= frame_header::size) {
    auto header = frame_header::read(reinterpret_cast<const std::byte*>(data + pos));
    if (!header.check_framing(max_body).empty())
      break;
    auto total = frame_header::size + size_t{header.length};
    if (size - pos < total)
      break;
    if (!f(header, reinterpret_cast<const std::byte*>(data + pos
                                                      + frame_header::size)))
      return pos + total;
    pos += total;
  }
  return pos;
}

/// A connection that goes nowhere: frames sent on it are counted and
/// dropped; close() is recorded and reported to the handler by
/// finish(), as a transport reports it after the current callback.
///
/// Thread rules: send() from any thread; the rest from the driving thread.
class fake_connection : public connection {
public:
  void start(std::shared_ptr<connection_handler> handler) override {
    handler_ = std::move(handler);
  }

  caf::error send(frame_buffer frame) override {
    std::lock_guard<std::mutex> guard{mtx_};
    ++frames_out_;
    bytes_out_ += frame.size();
    return closed_ ? caf::error{make_error(errc::connection_closed, "fake: closed")}
                   : caf::error{};
  }

  caf::error send_last(frame_buffer frame, successor next) override {
    auto err = send(std::move(frame));
    std::lock_guard<std::mutex> guard{mtx_};
    successor_ = std::move(next);
    return err;
  }

  void close(const caf::error& reason, bool) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!closed_) {
      closed_ = true;
      reason_ = reason ? reason : make_error(errc::connection_closed, "fake: closed");
    }
  }

  bool pause_reading(bool paused) override {
    paused_ = paused;
    return true;
  }

  std::string peer_name() const override {
    return "fuzz:peer";
  }

  traffic_counters traffic() const noexcept override {
    std::lock_guard<std::mutex> guard{mtx_};
    traffic_counters result;
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
    if (!closed() && handler_)
      handler_->on_frame(*this, header, body);
  }

  /// Closes (if nobody did) and reports on_closed once.
  void finish() {
    close(make_error(errc::connection_closed, "fuzz input ended"), false);
    if (handler_) {
      caf::error reason;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        reason = reason_;
      }
      auto h = std::move(handler_);
      h->on_closed(*this, reason);
    }
  }

private:
  mutable std::mutex mtx_;
  std::shared_ptr<connection_handler> handler_;
  successor successor_;
  bool closed_ = false;
  bool paused_ = false;
  caf::error reason_;
  uint64_t frames_out_ = 0;
  uint64_t bytes_out_ = 0;
};

} // namespace relay::fuzz
