#pragma once

// A small client for etcd's v3 API through its HTTP/JSON gateway (etcd
// 3.4: /v3/kv/*, /v3/lease/*, /v3/watch), on cpp-httplib and nlohmann-json.
// It speaks only what the cluster's etcd backend needs: leases with
// keep-alive, puts, ranges, deletes, a put-if-absent transaction and
// watches of a prefix. Keys and values are bytes (base64 on the wire, as
// the gateway wants); every answer is parsed and checked before use.
//
// Thread rules: one client per thread at a time (each call uses its own
// connection); watch() blocks its caller until stop() or an error.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace relay::cluster_detail {

struct etcd_kv {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct etcd_range {
  std::vector<etcd_kv> kvs;
  /// The store's revision when the range was read.
  int64_t revision = 0;
};

struct etcd_event {
  enum class type { put, del } kind = type::put;
  etcd_kv kv; // for a delete: the key and mod_revision only
};

/// The first key after every key with prefix `p` (etcd's range_end).
std::string prefix_end(const std::string& p);

class etcd_client {
public:
  /// `endpoints`: "http://host:port" URLs, tried in order. `timeout` bounds
  /// connecting and each answer. Errors of every call: connect_failed
  /// (no endpoint answered), protocol_error (an answer that is not what the
  /// API promises), peer_rejected (etcd refused the request; its message).
  etcd_client(std::vector<std::string> endpoints,
              std::chrono::milliseconds timeout);
  ~etcd_client();

  /// Grants a lease of `ttl`; returns its id.
  caf::expected<int64_t> grant(std::chrono::seconds ttl);

  /// Renews `lease`; returns the TTL left in seconds. Error
  /// connection_closed if the lease expired or was revoked.
  caf::expected<int64_t> keep_alive(int64_t lease);

  caf::error revoke(int64_t lease);

  /// Puts `key` = `value` (attached to `lease` unless 0); returns the
  /// revision.
  caf::expected<int64_t> put(const std::string& key, const std::string& value,
                             int64_t lease = 0);

  /// Puts `key` = `value` under `lease` only if the key does not exist (a
  /// transaction comparing its create revision with 0). Returns true if it
  /// put; otherwise `existing` (if given) receives the current entry.
  caf::expected<bool> put_if_absent(const std::string& key,
                                    const std::string& value, int64_t lease,
                                    etcd_kv* existing = nullptr);

  /// Deletes `key` only if its value is `value` (a transaction). Returns
  /// whether it deleted.
  caf::expected<bool> delete_if_value(const std::string& key,
                                      const std::string& value);

  /// Reads `key`, or every key with that prefix.
  caf::expected<etcd_range> range(const std::string& key, bool prefix = false);

  caf::error erase(const std::string& key, bool prefix = false);

  /// Watches every key with `prefix` from revision `start` (0: from now),
  /// calling `on_events` for each batch in order, until stop() is called,
  /// `on_events` returns false, or the stream breaks (the error; the
  /// caller re-reads and watches again from the last revision + 1).
  /// Returns none after stop(). Error compacted (as peer_rejected, naming
  /// the compact revision) if `start` is older than etcd's history.
  caf::error watch(const std::string& prefix, int64_t start,
                   const std::function<bool(const std::vector<etcd_event>&,
                                            int64_t revision)>& on_events);

  /// Ends a watch() in progress (from any thread).
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace relay::cluster_detail
