#include "etcd_session.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include <caf/send.hpp>

#include "cluster_wire.hpp"
#include "etcd_client.hpp"
#include "relay/error.hpp"
#include "relay/log.hpp"

namespace relay::cluster_detail {

namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;

// Between attempts to read the cluster's keys after a broken watch.
constexpr auto reread_interval = std::chrono::milliseconds{500};

std::string id_string(const caf::node_id& id) {
  return caf::to_string(id);
}

caf::node_id parse_id(const std::string& text) {
  caf::node_id result;
  if (text.empty() || text.size() > 128 || caf::parse(text, result) || !result)
    throw std::runtime_error("'" + text.substr(0, 128)
                             + "' is not a node id");
  return result;
}

const std::string& string_field(const json& obj, const char* name,
                                size_t max_size) {
  auto& x = obj.at(name);
  if (!x.is_string())
    throw std::runtime_error(std::string{"field "} + name
                             + " is not a string");
  auto& s = x.get_ref<const std::string&>();
  if (s.size() > max_size)
    throw std::runtime_error(std::string{"field "} + name + " is longer than "
                             + std::to_string(max_size) + " bytes");
  return s;
}

std::string member_value(const member_info& m, member_status status) {
  json j{{"name", m.name},
         {"address", m.address},
         {"status", status == member_status::left ? "left" : "up"}};
  return j.dump();
}

member_info member_of(const caf::node_id& id, const std::string& value) {
  auto j = json::parse(value);
  if (!j.is_object())
    throw std::runtime_error("not a JSON object");
  member_info m;
  m.node = id;
  m.name = string_field(j, "name", limits::max_name_size);
  m.address = string_field(j, "address", limits::max_address_size);
  auto& status = string_field(j, "status", 16);
  if (status == "up")
    m.status = member_status::up;
  else if (status == "left")
    m.status = member_status::left;
  else
    throw std::runtime_error("status '" + status + "' is neither up nor left");
  return m;
}

std::string row_value(const observation_row& row) {
  json ids = json::array();
  for (auto& id : row.unreachable)
    ids.push_back(id_string(id));
  json j{{"version", row.version}, {"unreachable", ids}};
  return j.dump();
}

observation_row row_of(const caf::node_id& id, const std::string& value) {
  auto j = json::parse(value);
  if (!j.is_object())
    throw std::runtime_error("not a JSON object");
  observation_row row;
  row.observer = id;
  auto& version = j.at("version");
  if (!version.is_number_unsigned())
    throw std::runtime_error("field version is not an unsigned number");
  row.version = version.get<uint64_t>();
  auto& xs = j.at("unreachable");
  if (!xs.is_array() || xs.size() > limits::max_members)
    throw std::runtime_error("field unreachable is not an array of at most "
                             + std::to_string(limits::max_members)
                             + " node ids");
  for (auto& x : xs) {
    if (!x.is_string())
      throw std::runtime_error("an unreachable entry is not a string");
    row.unreachable.push_back(parse_id(x.get<std::string>()));
  }
  return row;
}

std::string name_value(const caf::actor& holder) {
  json j{{"node", id_string(holder->node())}, {"actor", holder->id()}};
  return j.dump();
}

// "actor 12 on node ..." for a names/ value (or what is wrong with it).
std::string describe_holder(const std::string& value) {
  try {
    auto j = json::parse(value);
    return "actor " + std::to_string(j.at("actor").get<uint64_t>())
           + " on node " + string_field(j, "node", 128);
  } catch (std::exception& ex) {
    return std::string{"an unreadable holder ("} + ex.what() + ")";
  }
}

} // namespace

etcd_session::etcd_session(etcd_settings cfg, std::string cluster,
                           member_info self)
  : cfg_(std::move(cfg)),
    self_(std::move(self)),
    base_(cfg_.prefix + cluster + "/") {
  worker_ = std::thread{[this] { worker_loop(); }};
}

etcd_session::~etcd_session() {
  stop();
}

void etcd_session::send(caf::message msg) {
  caf::actor sink;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    sink = sink_;
  }
  if (sink)
    caf::anon_send(sink, std::move(msg));
}

void etcd_session::post(job j) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (stopping_)
    return;
  jobs_.push_back(std::move(j));
  cv_.notify_all();
}

void etcd_session::open(caf::actor sink) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    sink_ = std::move(sink);
  }
  post([this](etcd_client& client) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (lease_ != 0) {
        return; // already open
      }
    }
    auto lease = client.grant(cfg_.lease_ttl);
    if (!lease) {
      send(caf::make_message(etcd_opened{lease.error()}));
      return;
    }
    {
      std::lock_guard<std::mutex> guard{mtx_};
      lease_ = *lease;
      renewed_ = steady::now();
      if (!watcher_.joinable() && !stopping_) {
        watch_client_ = std::make_shared<etcd_client>(cfg_.endpoints,
                                                      cfg_.timeout);
        watcher_ = std::thread{[this] { watcher_loop(); }};
      }
    }
    log(log_level::info, "cluster: etcd lease " + std::to_string(*lease)
                           + " granted (ttl "
                           + std::to_string(cfg_.lease_ttl.count()) + " s)");
    send(caf::make_message(etcd_opened{}));
  });
}

void etcd_session::announce(member_status status) {
  post([this, status](etcd_client& client) {
    int64_t lease;
    bool first;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      lease = lease_;
      first = !announced_;
    }
    if (lease == 0) {
      send(caf::make_message(etcd_announced{
        make_error(errc::connection_closed, "this node holds no etcd lease")}));
      return;
    }
    if (status == member_status::up && first) {
      // A member key at our address with another id is an earlier
      // incarnation of this node (the address is ours now): it is dead.
      auto old = client.range(base_ + "members/", true);
      if (!old) {
        send(caf::make_message(etcd_announced{old.error()}));
        return;
      }
      auto dir = base_ + "members/";
      for (auto& kv : old->kvs) {
        try {
          auto id = parse_id(kv.key.substr(dir.size()));
          auto m = member_of(id, kv.value);
          if (id != self_.node && m.address == self_.address) {
            log(log_level::info, "cluster: deleting the member key of an "
                                 "earlier incarnation at "
                                   + m.address);
            client.erase(kv.key);
          }
        } catch (std::exception&) {
          // Reported by the watcher; not ours to judge here.
        }
      }
    }
    auto put = client.put(base_ + "members/" + id_string(self_.node),
                          member_value(self_, status), lease);
    if (put) {
      std::lock_guard<std::mutex> guard{mtx_};
      announced_ = true;
    }
    send(caf::make_message(etcd_announced{put ? caf::none : put.error()}));
  });
}

void etcd_session::put_row(const observation_row& row) {
  post([this, value = row_value(row)](etcd_client& client) {
    int64_t lease;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      lease = lease_;
    }
    if (lease == 0)
      return;
    if (auto put = client.put(base_ + "rows/" + id_string(self_.node), value,
                              lease);
        !put)
      log(log_level::warning, "cluster: cannot write this node's "
                              "reachability to etcd: "
                                + describe(put.error()));
  });
}

void etcd_session::down_member(const caf::node_id& node) {
  post([this, node](etcd_client& client) {
    if (auto err = client.erase(base_ + "members/" + id_string(node)))
      log(log_level::warning, "cluster: cannot delete the member key of "
                                + id_string(node) + ": " + describe(err));
  });
}

void etcd_session::revoke() {
  post([this](etcd_client& client) {
    int64_t lease;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      lease = lease_;
      lease_ = 0;
    }
    if (lease == 0)
      return;
    if (auto err = client.revoke(lease))
      log(log_level::warning, "cluster: cannot revoke etcd lease "
                                + std::to_string(lease) + " (its keys go "
                                "when it expires): " + describe(err));
  });
}

void etcd_session::claim_name(const std::string& name,
                              const caf::actor& holder, caf::actor reply_to,
                              uint64_t request) {
  post([this, name, value = name_value(holder), reply_to,
        request](etcd_client& client) {
    int64_t lease;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      lease = lease_;
    }
    caf::error result;
    if (lease == 0) {
      result = make_error(errc::invalid_argument,
                          "this node holds no etcd lease (not a member)");
    } else {
      etcd_kv existing;
      auto put = client.put_if_absent(base_ + "names/" + name, value, lease,
                                      &existing);
      if (!put)
        result = put.error();
      else if (!*put)
        result = make_error(errc::already_registered,
                            "name '" + name + "' is held by "
                              + describe_holder(existing.value));
    }
    caf::anon_send(reply_to, etcd_claimed{request, std::move(result)});
  });
}

void etcd_session::release_name(const std::string& name,
                                const caf::actor& holder) {
  post([this, name, value = name_value(holder)](etcd_client& client) {
    auto done = client.delete_if_value(base_ + "names/" + name, value);
    if (!done)
      log(log_level::warning, "cluster: cannot withdraw name '" + name
                                + "' in etcd (it goes with this node's "
                                  "lease): "
                                + describe(done.error()));
  });
}

void etcd_session::stop() {
  std::shared_ptr<etcd_client> watching;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
    watching = watch_client_;
    cv_.notify_all();
  }
  if (watching)
    watching->stop();
  if (worker_.joinable())
    worker_.join();
  if (watcher_.joinable())
    watcher_.join();
  std::lock_guard<std::mutex> guard{mtx_};
  sink_ = nullptr;
}

void etcd_session::worker_loop() {
  etcd_client client{cfg_.endpoints, cfg_.timeout};
  auto ttl = std::chrono::duration_cast<steady::duration>(cfg_.lease_ttl);
  auto interval = std::max<steady::duration>(ttl / 3,
                                             std::chrono::milliseconds{300});
  auto next_keep_alive = steady::now() + interval;
  std::unique_lock<std::mutex> lock{mtx_};
  for (;;) {
    auto ready = [this] { return stopping_ || !jobs_.empty(); };
    if (lease_ == 0)
      cv_.wait(lock, ready);
    else
      cv_.wait_until(lock, next_keep_alive, ready);
    if (stopping_)
      return;
    if (!jobs_.empty()) {
      auto j = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      j(client);
      lock.lock();
      continue;
    }
    if (lease_ == 0 || steady::now() < next_keep_alive)
      continue;
    auto lease = lease_;
    lock.unlock();
    auto left = client.keep_alive(lease);
    lock.lock();
    auto now = steady::now();
    next_keep_alive = now + interval;
    if (left) {
      renewed_ = now;
      continue;
    }
    bool expired = is(left.error(), errc::connection_closed);
    if (!expired && now - renewed_ < ttl) {
      log(log_level::warning, "cluster: etcd keep-alive failed (retrying): "
                                + describe(left.error()));
      continue;
    }
    if (lease_ != lease)
      continue; // revoked meanwhile
    lease_ = 0;
    auto reason = make_error(
      errc::connection_closed,
      expired ? "etcd lease " + std::to_string(lease) + " expired"
              : "etcd did not renew lease " + std::to_string(lease)
                  + " for its ttl (" + describe(left.error()) + ")");
    lock.unlock();
    send(caf::make_message(etcd_lost{reason}));
    lock.lock();
  }
}

void etcd_session::watcher_loop() {
  std::shared_ptr<etcd_client> client;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    client = watch_client_;
  }
  auto stopping = [this] {
    std::lock_guard<std::mutex> guard{mtx_};
    return stopping_;
  };
  auto pause = [this] {
    std::unique_lock<std::mutex> lock{mtx_};
    cv_.wait_for(lock, reread_interval, [this] { return stopping_; });
  };
  auto members_dir = base_ + "members/";
  auto rows_dir = base_ + "rows/";
  // Adds one key (or its deletion) to `out`; a value that is not what this
  // backend writes is logged and ignored.
  auto decode = [&](const etcd_kv& kv, bool deleted, etcd_update& out) {
    try {
      if (kv.key.rfind(members_dir, 0) == 0) {
        auto id = parse_id(kv.key.substr(members_dir.size()));
        if (deleted)
          out.gone.push_back(id);
        else
          out.members.push_back(member_of(id, kv.value));
      } else if (kv.key.rfind(rows_dir, 0) == 0 && !deleted) {
        out.rows.push_back(row_of(parse_id(kv.key.substr(rows_dir.size())),
                                  kv.value));
      }
    } catch (std::exception& ex) {
      log(log_level::warning, "cluster: ignored etcd key '"
                                + kv.key.substr(0, 300) + "': " + ex.what());
    }
  };
  int64_t revision = 0;
  bool reread = true;
  while (!stopping()) {
    if (reread) {
      auto all = client->range(base_, true);
      if (!all) {
        if (stopping())
          return;
        log(log_level::warning, "cluster: cannot read the cluster's keys "
                                "from etcd (retrying): "
                                  + describe(all.error()));
        pause();
        continue;
      }
      etcd_update full;
      full.full = true;
      for (auto& kv : all->kvs)
        decode(kv, false, full);
      revision = all->revision;
      send(caf::make_message(std::move(full)));
      reread = false;
    }
    auto err = client->watch(
      base_, revision + 1,
      [&](const std::vector<etcd_event>& events, int64_t) {
        etcd_update update;
        for (auto& ev : events) {
          decode(ev.kv, ev.kind == etcd_event::type::del, update);
          revision = std::max(revision, ev.kv.mod_revision);
        }
        if (!update.members.empty() || !update.rows.empty()
            || !update.gone.empty())
          send(caf::make_message(std::move(update)));
        return true;
      });
    if (stopping())
      return;
    log(log_level::warning, "cluster: the etcd watch ended ("
                              + describe(err)
                              + "); reading the cluster's keys again");
    reread = true;
    pause();
  }
}

} // namespace relay::cluster_detail
