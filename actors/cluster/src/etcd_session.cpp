#include "etcd_session.hpp"

#include <algorithm>

#include <pthread.h>
#include <signal.h>

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

// cpp-httplib writes to sockets without MSG_NOSIGNAL: a write to a socket
// that etcd (or stop()) closed would raise SIGPIPE and end the process.
// The signal goes to the writing thread, so the session's threads block it
// (the write then fails with EPIPE) without touching the process's
// disposition, which is the application's.
void block_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Between keep-alive attempts after one failed.
constexpr auto keep_alive_retry = std::chrono::milliseconds{200};

// Repeated warnings of one kind (etcd down) at most this often.
constexpr auto warning_interval = std::chrono::seconds{2};

// Lets a repeated warning through at most every warning_interval, saying
// how many it held back.
class warning_throttle {
public:
  void warn(const std::string& text) {
    auto now = steady::now();
    if (now - last_ < warning_interval) {
      ++held_;
      return;
    }
    last_ = now;
    log(log_level::warning,
        held_ == 0 ? text
                   : text + " (and " + std::to_string(held_)
                       + " more like it since the last)");
    held_ = 0;
  }

private:
  steady::time_point last_{};
  int held_ = 0;
};

std::string id_string(const caf::node_id& id) {
  return caf::to_string(id);
}

// JSON text; bytes that are not UTF-8 (names are only length-checked)
// become U+FFFD instead of an exception.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
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
  return dump(j);
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
  return dump(j);
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
  return dump(j);
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
  worker_ = std::thread{[this] {
    block_sigpipe();
    worker_loop();
  }};
  keeper_ = std::thread{[this] {
    block_sigpipe();
    keeper_loop();
  }};
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
    return; // (too late: the worker only finishes what was asked before)
  jobs_.push_back(std::move(j));
  cv_.notify_all();
}

void etcd_session::open(caf::actor sink) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    sink_ = std::move(sink);
    if (opening_ || lease_ != 0)
      return; // one at a time, and once open it stays open
    opening_ = true;
  }
  post([this](etcd_client& client) {
    auto lease = client.grant(cfg_.lease_ttl);
    if (!lease) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        opening_ = false;
      }
      send(caf::make_message(etcd_opened{lease.error()}));
      return;
    }
    {
      std::lock_guard<std::mutex> guard{mtx_};
      opening_ = false;
      lease_ = *lease;
      renewed_ = steady::now();
      cv_.notify_all(); // the keeper starts
      if (!watcher_.joinable() && !stopping_) {
        watch_client_ = std::make_shared<etcd_client>(cfg_.endpoints,
                                                      cfg_.timeout);
        watcher_ = std::thread{[this] {
          block_sigpipe();
          watcher_loop();
        }};
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
    auto dir = base_ + "membership/members/";
    if (status == member_status::up && first) {
      // A member key at our address with another id is an earlier
      // incarnation of this node (the address is ours now): it is dead.
      // As in Akka, a node at an address replaces the member registered
      // there, so advertised addresses must be unique.
      auto old = client.range(dir, true);
      if (!old) {
        send(caf::make_message(etcd_announced{old.error()}));
        return;
      }
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
    auto put = client.put(dir + id_string(self_.node),
                          member_value(self_, status), lease);
    if (put) {
      std::lock_guard<std::mutex> guard{mtx_};
      announced_ = true;
    }
    send(caf::make_message(etcd_announced{put ? caf::none : put.error()}));
  });
}

void etcd_session::put_row(const observation_row& row) {
  post([this, version = row.version,
        value = row_value(row)](etcd_client& client) {
    auto lease = this->lease();
    caf::error err;
    if (lease == 0) {
      err = make_error(errc::connection_closed,
                       "this node holds no etcd lease");
    } else if (auto put = client.put(base_ + "membership/rows/"
                                       + id_string(self_.node),
                                     value, lease);
               !put) {
      err = put.error();
      log(log_level::warning, "cluster: cannot write this node's "
                              "reachability to etcd (retrying): "
                                + describe(err));
    }
    send(caf::make_message(etcd_row_written{version, std::move(err)}));
  });
}

void etcd_session::down_member(const caf::node_id& node) {
  post([this, node](etcd_client& client) {
    auto err = client.erase(base_ + "membership/members/" + id_string(node));
    if (err)
      log(log_level::warning, "cluster: cannot delete the member key of "
                                + id_string(node) + " (retrying): "
                                + describe(err));
    send(caf::make_message(etcd_downed{node, std::move(err)}));
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
    auto key = base_ + "names/" + name;
    if (lease == 0) {
      result = make_error(errc::invalid_argument,
                          "this node holds no etcd lease (not a member)");
    } else {
      etcd_kv existing;
      auto put = client.put_if_absent(key, value, lease, &existing);
      if (!put) {
        result = put.error();
        // The transaction may have been applied without its answer
        // reaching us: take the name back if it is ours, or nobody could
        // register it while this node lives.
        if (auto undone = client.delete_if_value(key, value); !undone)
          log(log_level::warning, "cluster: cannot tell whether name '"
                                    + name + "' was taken in etcd (it goes "
                                    "with this node's lease at the "
                                    "latest): "
                                    + describe(undone.error()));
      } else if (!*put && existing.value != value) {
        result = make_error(errc::already_registered,
                            "name '" + name + "' is held by "
                              + describe_holder(existing.value));
      }
      // (!*put with our own value: a retry on another endpoint found the
      // transaction applied by the first; the name is ours.)
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
    if (!stopping_)
      drain_deadline_ = steady::now() + 2 * cfg_.timeout;
    stopping_ = true;
    watching = watch_client_;
    cv_.notify_all();
  }
  if (watching)
    watching->stop();
  for (auto* t : {&worker_, &keeper_, &watcher_})
    if (t->joinable())
      t->join();
  std::lock_guard<std::mutex> guard{mtx_};
  sink_ = nullptr;
}

void etcd_session::worker_loop() {
  etcd_client client{cfg_.endpoints, cfg_.timeout};
  std::unique_lock<std::mutex> lock{mtx_};
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    // Requests asked for before stop() still run (a withdrawn name, a
    // revoke), for at most two timeouts in all.
    if (stopping_ && (jobs_.empty() || steady::now() >= drain_deadline_))
      return;
    auto j = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    try {
      j(client);
    } catch (std::exception& ex) {
      // Every answer is checked; this is a bug, not a peer's doing.
      log(log_level::error, std::string{"cluster: an etcd request failed "
                                        "unexpectedly: "}
                              + ex.what());
    }
    lock.lock();
  }
}

void etcd_session::keeper_loop() {
  etcd_client client{cfg_.endpoints, cfg_.timeout};
  auto ttl = std::chrono::duration_cast<steady::duration>(cfg_.lease_ttl);
  // etcd's own clients renew at a third of the ttl.
  auto interval = std::max<steady::duration>(ttl / 3,
                                             std::chrono::milliseconds{300});
  int64_t lease = 0;   // the lease being kept
  steady::time_point next; // its next keep-alive
  warning_throttle warnings;
  std::unique_lock<std::mutex> lock{mtx_};
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || lease_ != 0; });
    if (stopping_)
      return;
    if (lease_ != lease) {
      lease = lease_;
      next = renewed_ + interval;
    }
    if (cv_.wait_until(lock, next, [this, lease] {
          return stopping_ || lease_ != lease;
        }))
      continue; // stopping, or revoked or replaced meanwhile
    lock.unlock();
    auto left = client.keep_alive(lease);
    lock.lock();
    if (lease_ != lease)
      continue;
    auto now = steady::now();
    if (left) {
      renewed_ = now;
      next = now + interval;
      continue;
    }
    bool expired = is(left.error(), errc::connection_closed);
    if (!expired && now - renewed_ < ttl) {
      warnings.warn("cluster: etcd keep-alive failed (retrying): "
                    + describe(left.error()));
      // Soon, not an interval later: the lease may not last that long.
      next = now + keep_alive_retry;
      continue;
    }
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
  auto dir = base_ + "membership/";
  auto members_dir = dir + "members/";
  auto rows_dir = dir + "rows/";
  // Adds one key (or its deletion) to `out`, in order; a value that is not
  // what this backend writes is logged and ignored.
  auto decode = [&](const etcd_kv& kv, bool deleted, etcd_update& out) {
    try {
      if (kv.key.rfind(members_dir, 0) == 0) {
        auto id = parse_id(kv.key.substr(members_dir.size()));
        if (out.full)
          out.present.push_back(id); // even if its value is bad
        etcd_change change;
        if (deleted) {
          change.kind = etcd_change::type::member_gone;
          change.node = id;
        } else {
          change.member = member_of(id, kv.value);
        }
        out.changes.push_back(std::move(change));
      } else if (kv.key.rfind(rows_dir, 0) == 0) {
        if (deleted)
          return; // its member's key goes too
        etcd_change change;
        change.kind = etcd_change::type::row;
        change.row = row_of(parse_id(kv.key.substr(rows_dir.size())),
                            kv.value);
        out.changes.push_back(std::move(change));
      } else if (!deleted) {
        throw std::runtime_error("not a key of this backend");
      }
    } catch (std::exception& ex) {
      log(log_level::warning, "cluster: ignored etcd key '"
                                + kv.key.substr(0, 300) + "': " + ex.what());
    }
  };
  int64_t revision = 0;
  bool reread = true;
  warning_throttle warnings;
  while (!stopping()) {
    if (reread) {
      auto all = client->range(dir, true);
      if (!all) {
        if (stopping())
          return;
        warnings.warn("cluster: cannot read the cluster's keys from etcd "
                      "(retrying): "
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
      dir, revision + 1,
      [&](const std::vector<etcd_event>& events, int64_t) {
        etcd_update update;
        for (auto& ev : events) {
          decode(ev.kv, ev.kind == etcd_event::type::del, update);
          revision = std::max(revision, ev.kv.mod_revision);
        }
        if (!update.changes.empty())
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
