#include "etcd_client.hpp"

#include <algorithm>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "relay/error.hpp"

namespace relay::cluster_detail {

namespace {

using json = nlohmann::json;

// Bound on one answer of the gateway (a watch batch included).
constexpr size_t max_answer = 16u << 20;

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(in.data()),
                           static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// cpp-httplib's error names ("Connection", "Read", "Success") in words.
std::string describe_http(httplib::Error err) {
  switch (err) {
    case httplib::Error::Success:
      return "the server closed the stream";
    case httplib::Error::Connection:
      return "cannot connect (refused or unreachable)";
    case httplib::Error::ConnectionTimeout:
      return "connecting timed out";
    case httplib::Error::Read:
      return "reading the answer failed or timed out";
    case httplib::Error::Write:
      return "sending the request failed";
    case httplib::Error::Canceled:
      return "canceled";
    default:
      return std::string{"HTTP client error "} + httplib::to_string(err);
  }
}

caf::error bad_answer(const std::string& what) {
  return make_error(errc::protocol_error, "etcd: " + what);
}

// Decodes base64 from etcd; throws std::runtime_error if it is not.
std::string unbase64(const std::string& in) {
  if (in.size() % 4 != 0)
    throw std::runtime_error("base64 text of length "
                             + std::to_string(in.size()));
  std::string out(in.size() / 4 * 3, '\0');
  auto n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(in.data()),
                           static_cast<int>(in.size()));
  if (n < 0)
    throw std::runtime_error("invalid base64");
  size_t pad = 0;
  if (!in.empty() && in.back() == '=')
    pad = in.size() >= 2 && in[in.size() - 2] == '=' ? 2 : 1;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// The gateway writes 64-bit integers as strings; absent means 0.
int64_t int_of(const json& obj, const char* name) {
  auto i = obj.find(name);
  if (i == obj.end())
    return 0;
  if (i->is_string())
    return std::stoll(i->get<std::string>());
  if (i->is_number_integer())
    return i->get<int64_t>();
  throw std::runtime_error(std::string{"field "} + name + " is not a number");
}

std::string bytes_of(const json& obj, const char* name) {
  auto i = obj.find(name);
  if (i == obj.end())
    return {};
  if (!i->is_string())
    throw std::runtime_error(std::string{"field "} + name
                             + " is not a string");
  return unbase64(i->get<std::string>());
}

etcd_kv kv_of(const json& x) {
  if (!x.is_object())
    throw std::runtime_error("a key-value that is not an object");
  etcd_kv kv;
  kv.key = bytes_of(x, "key");
  kv.value = bytes_of(x, "value");
  kv.create_revision = int_of(x, "create_revision");
  kv.mod_revision = int_of(x, "mod_revision");
  kv.lease = int_of(x, "lease");
  return kv;
}

int64_t revision_of(const json& answer) {
  auto h = answer.find("header");
  if (h == answer.end() || !h->is_object())
    throw std::runtime_error("an answer without a header");
  return int_of(*h, "revision");
}

} // namespace

std::string prefix_end(const std::string& p) {
  auto end = p;
  while (!end.empty()) {
    auto& c = end.back();
    if (static_cast<unsigned char>(c) < 0xff) {
      c = static_cast<char>(static_cast<unsigned char>(c) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0'); // every key
}

struct etcd_client::impl {
  std::vector<std::string> endpoints;
  std::chrono::milliseconds timeout;
  std::atomic<bool> stopping{false};
  std::mutex mtx; // guards watcher
  httplib::Client* watcher = nullptr;

  std::unique_ptr<httplib::Client> connect(const std::string& endpoint) {
    auto cli = std::make_unique<httplib::Client>(endpoint);
    auto secs = timeout.count() / 1000;
    auto usecs = (timeout.count() % 1000) * 1000;
    cli->set_connection_timeout(secs, usecs);
    cli->set_read_timeout(secs, usecs);
    cli->set_write_timeout(secs, usecs);
    cli->set_keep_alive(false);
    return cli;
  }

  // POSTs `body` to `path` on the first endpoint that answers.
  caf::expected<json> call(const std::string& path, const json& body) {
    std::string last = "no endpoints";
    for (auto& ep : endpoints) {
      auto cli = connect(ep);
      auto res = cli->Post(path.c_str(), body.dump(), "application/json");
      if (!res) {
        last = ep + ": " + describe_http(res.error());
        continue;
      }
      if (res->body.size() > max_answer)
        return bad_answer(ep + path + ": answer of "
                          + std::to_string(res->body.size()) + " bytes");
      json answer;
      try {
        answer = json::parse(res->body);
      } catch (std::exception& ex) {
        return bad_answer(ep + path + ": not JSON: " + ex.what());
      }
      if (res->status != 200 || !answer.is_object()
          || answer.contains("error")) {
        std::string msg = answer.is_object() && answer.contains("message")
                              && answer["message"].is_string()
                            ? answer["message"].get<std::string>()
                            : res->body.substr(0, 200);
        return make_error(errc::peer_rejected,
                          "etcd " + ep + path + " (HTTP "
                            + std::to_string(res->status) + "): " + msg);
      }
      return answer;
    }
    return make_error(errc::connect_failed, "etcd unreachable: " + last);
  }
};

etcd_client::etcd_client(std::vector<std::string> endpoints,
                         std::chrono::milliseconds timeout)
  : impl_(std::make_unique<impl>()) {
  impl_->endpoints = std::move(endpoints);
  impl_->timeout = timeout;
}

etcd_client::~etcd_client() = default;

caf::expected<int64_t> etcd_client::grant(std::chrono::seconds ttl) {
  auto answer = impl_->call("/v3/lease/grant", {{"TTL", ttl.count()}});
  if (!answer)
    return answer.error();
  try {
    auto id = int_of(*answer, "ID");
    if (id == 0)
      return bad_answer("lease grant without an ID");
    return id;
  } catch (std::exception& ex) {
    return bad_answer(std::string{"lease grant: "} + ex.what());
  }
}

caf::expected<int64_t> etcd_client::keep_alive(int64_t lease) {
  auto answer = impl_->call("/v3/lease/keepalive",
                            {{"ID", std::to_string(lease)}});
  if (!answer)
    return answer.error();
  try {
    auto result = answer->find("result");
    if (result == answer->end() || !result->is_object())
      return bad_answer("keep-alive without a result");
    auto ttl = int_of(*result, "TTL");
    if (ttl <= 0)
      return make_error(errc::connection_closed,
                        "etcd lease " + std::to_string(lease)
                          + " expired or was revoked");
    return ttl;
  } catch (std::exception& ex) {
    return bad_answer(std::string{"keep-alive: "} + ex.what());
  }
}

caf::error etcd_client::revoke(int64_t lease) {
  auto answer = impl_->call("/v3/lease/revoke",
                            {{"ID", std::to_string(lease)}});
  return answer ? caf::none : answer.error();
}

caf::expected<int64_t> etcd_client::put(const std::string& key,
                                        const std::string& value,
                                        int64_t lease) {
  json body{{"key", base64(key)}, {"value", base64(value)}};
  if (lease != 0)
    body["lease"] = std::to_string(lease);
  auto answer = impl_->call("/v3/kv/put", body);
  if (!answer)
    return answer.error();
  try {
    return revision_of(*answer);
  } catch (std::exception& ex) {
    return bad_answer(std::string{"put: "} + ex.what());
  }
}

caf::expected<bool> etcd_client::put_if_absent(const std::string& key,
                                               const std::string& value,
                                               int64_t lease,
                                               etcd_kv* existing) {
  json put{{"key", base64(key)}, {"value", base64(value)}};
  if (lease != 0)
    put["lease"] = std::to_string(lease);
  json body{
    {"compare",
     json::array({{{"key", base64(key)},
                   {"target", "CREATE"},
                   {"result", "EQUAL"},
                   {"create_revision", "0"}}})},
    {"success", json::array({{{"request_put", put}}})},
    {"failure", json::array({{{"request_range", {{"key", base64(key)}}}}})},
  };
  auto answer = impl_->call("/v3/kv/txn", body);
  if (!answer)
    return answer.error();
  try {
    auto ok = answer->value("succeeded", false);
    if (!ok && existing != nullptr) {
      auto& responses = answer->at("responses");
      auto& range = responses.at(0).at("response_range");
      auto kvs = range.find("kvs");
      if (kvs != range.end() && kvs->is_array() && !kvs->empty())
        *existing = kv_of(kvs->at(0));
    }
    return ok;
  } catch (std::exception& ex) {
    return bad_answer(std::string{"transaction: "} + ex.what());
  }
}

caf::expected<bool> etcd_client::delete_if_value(const std::string& key,
                                                 const std::string& value) {
  json body{
    {"compare",
     json::array({{{"key", base64(key)},
                   {"target", "VALUE"},
                   {"result", "EQUAL"},
                   {"value", base64(value)}}})},
    {"success",
     json::array({{{"request_delete_range", {{"key", base64(key)}}}}})},
  };
  auto answer = impl_->call("/v3/kv/txn", body);
  if (!answer)
    return answer.error();
  try {
    return answer->value("succeeded", false);
  } catch (std::exception& ex) {
    return bad_answer(std::string{"transaction: "} + ex.what());
  }
}

caf::expected<etcd_range> etcd_client::range(const std::string& key,
                                             bool prefix) {
  json body{{"key", base64(key)}};
  if (prefix)
    body["range_end"] = base64(prefix_end(key));
  auto answer = impl_->call("/v3/kv/range", body);
  if (!answer)
    return answer.error();
  try {
    etcd_range result;
    result.revision = revision_of(*answer);
    if (auto kvs = answer->find("kvs"); kvs != answer->end()) {
      if (!kvs->is_array())
        return bad_answer("range: kvs is not an array");
      for (auto& x : *kvs)
        result.kvs.push_back(kv_of(x));
    }
    return result;
  } catch (std::exception& ex) {
    return bad_answer(std::string{"range: "} + ex.what());
  }
}

caf::error etcd_client::erase(const std::string& key, bool prefix) {
  json body{{"key", base64(key)}};
  if (prefix)
    body["range_end"] = base64(prefix_end(key));
  auto answer = impl_->call("/v3/kv/deleterange", body);
  return answer ? caf::none : answer.error();
}

caf::error etcd_client::watch(
  const std::string& prefix, int64_t start,
  const std::function<bool(const std::vector<etcd_event>&, int64_t)>&
    on_events) {
  std::string last = "no endpoints";
  for (auto& ep : impl_->endpoints) {
    // On the next endpoint, go on after what was delivered (not from
    // `start` again: that would replay it).
    json create{{"key", base64(prefix)},
                {"range_end", base64(prefix_end(prefix))}};
    if (start > 0)
      create["start_revision"] = std::to_string(start);
    json body{{"create_request", create}};
    auto cli = impl_->connect(ep);
    // A watch is quiet while nothing changes: no read timeout on it; stop()
    // ends it by closing the socket.
    cli->set_read_timeout(24 * 3600, 0);
    {
      // Checked under the mutex that stop() takes: a stop() before this
      // point is seen here, one after it finds the client to stop.
      std::lock_guard<std::mutex> guard{impl_->mtx};
      if (impl_->stopping)
        return caf::none;
      impl_->watcher = cli.get();
    }
    std::string buffer;
    caf::error failure;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v3/watch";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* data, size_t size, uint64_t,
                               uint64_t) {
      buffer.append(data, size);
      if (buffer.size() > max_answer) {
        failure = bad_answer("watch: a message over "
                             + std::to_string(max_answer) + " bytes");
        return false;
      }
      // The gateway streams one JSON object per line.
      for (auto nl = buffer.find('\n'); nl != std::string::npos;
           nl = buffer.find('\n')) {
        auto line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        if (line.find_first_not_of(" \r\t") == std::string::npos)
          continue;
        try {
          auto msg = json::parse(line);
          if (msg.contains("error")) {
            failure = make_error(errc::peer_rejected,
                                 "etcd watch: " + line.substr(0, 300));
            return false;
          }
          auto& result = msg.at("result");
          if (int_of(result, "compact_revision") > 0) {
            failure = make_error(errc::peer_rejected,
                                 "etcd watch: history compacted up to "
                                   "revision "
                                   + std::to_string(
                                     int_of(result, "compact_revision")));
            return false;
          }
          if (result.value("canceled", false)) {
            failure = make_error(errc::connection_closed,
                                 "etcd canceled the watch");
            return false;
          }
          std::vector<etcd_event> events;
          if (auto evs = result.find("events"); evs != result.end()) {
            if (!evs->is_array())
              throw std::runtime_error("events is not an array");
            for (auto& e : *evs) {
              etcd_event ev;
              ev.kind = e.value("type", std::string{}) == "DELETE"
                          ? etcd_event::type::del
                          : etcd_event::type::put;
              ev.kv = kv_of(e.at("kv"));
              start = std::max(start, ev.kv.mod_revision + 1);
              events.push_back(std::move(ev));
            }
          }
          if (!events.empty() && !on_events(events, revision_of(result)))
            return false;
        } catch (std::exception& ex) {
          failure = bad_answer(std::string{"watch: "} + ex.what());
          return false;
        }
      }
      return true;
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    cli->send(req, res, err);
    {
      std::lock_guard<std::mutex> guard{impl_->mtx};
      impl_->watcher = nullptr;
    }
    if (impl_->stopping)
      return caf::none;
    if (failure)
      return failure;
    last = ep + ": " + describe_http(err);
    if (err == httplib::Error::Canceled)
      return caf::none; // on_events asked to stop
  }
  return make_error(errc::connection_closed, "etcd watch ended: " + last);
}

void etcd_client::stop() {
  impl_->stopping = true;
  // cpp-httplib's stop() does nothing while the client has not opened its
  // socket yet, so a watch that is just starting would run on: stop it
  // until the watch has let go of its client (bounded).
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard<std::mutex> guard{impl_->mtx};
      if (impl_->watcher == nullptr)
        return;
      impl_->watcher->stop();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
}

} // namespace relay::cluster_detail
