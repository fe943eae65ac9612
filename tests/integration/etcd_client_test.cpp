// The cluster's etcd client against a real etcd-server on loopback.

#include "etcd_client.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "etcd_server.hpp"
#include "relay/error.hpp"

using namespace std::chrono_literals;
using relay::cluster_detail::etcd_client;
using relay::cluster_detail::etcd_event;

namespace {

class etcd_client_test : public testing::Test {
protected:
  static void SetUpTestSuite() {
    server_ = new relay::test::etcd_server;
  }

  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  etcd_client client{{server_->url()}, 2000ms};
  // Keys of each test live under their own prefix.
  std::string prefix = std::string{"/t/"}
                       + testing::UnitTest::GetInstance()
                           ->current_test_info()
                           ->name()
                       + "/";

  static relay::test::etcd_server* server_;
};

relay::test::etcd_server* etcd_client_test::server_ = nullptr;

// Collects watch events on a thread of its own.
struct watcher {
  etcd_client client;
  std::thread thread;
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<etcd_event> events;
  caf::error result;

  watcher(const std::string& url, const std::string& prefix, int64_t start)
    : client({url}, 2000ms) {
    thread = std::thread([this, prefix, start] {
      auto err = client.watch(prefix, start,
                              [this](const std::vector<etcd_event>& evs,
                                     int64_t) {
                                std::lock_guard<std::mutex> guard{mtx};
                                events.insert(events.end(), evs.begin(),
                                              evs.end());
                                cv.notify_all();
                                return true;
                              });
      std::lock_guard<std::mutex> guard{mtx};
      result = err;
    });
  }

  ~watcher() {
    client.stop();
    thread.join();
  }

  bool wait_for(size_t n, std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, bound, [&] { return events.size() >= n; });
  }
};

} // namespace

TEST_F(etcd_client_test, put_and_range) {
  ASSERT_TRUE(client.put(prefix + "a", "1"));
  ASSERT_TRUE(client.put(prefix + "b", std::string("\0\xff bytes", 8)));
  ASSERT_TRUE(client.put(prefix.substr(0, prefix.size() - 1) + "x", "out"));
  auto one = client.range(prefix + "b");
  ASSERT_TRUE(one);
  ASSERT_EQ(one->kvs.size(), 1u);
  EXPECT_EQ(one->kvs[0].value, std::string("\0\xff bytes", 8));
  auto all = client.range(prefix, true);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->kvs.size(), 2u);
  EXPECT_EQ(all->kvs[0].key, prefix + "a");
  EXPECT_GT(all->revision, 0);
  ASSERT_FALSE(client.erase(prefix, true));
  EXPECT_TRUE(client.range(prefix, true)->kvs.empty());
}

TEST_F(etcd_client_test, put_if_absent_has_one_winner) {
  auto lease = client.grant(10s);
  ASSERT_TRUE(lease);
  relay::cluster_detail::etcd_kv existing;
  auto first = client.put_if_absent(prefix + "name", "a", *lease, &existing);
  ASSERT_TRUE(first);
  EXPECT_TRUE(*first);
  auto second = client.put_if_absent(prefix + "name", "b", *lease, &existing);
  ASSERT_TRUE(second);
  EXPECT_FALSE(*second);
  EXPECT_EQ(existing.value, "a");
  EXPECT_EQ(existing.lease, *lease);
  // Only the holder's value deletes it.
  EXPECT_FALSE(*client.delete_if_value(prefix + "name", "b"));
  EXPECT_TRUE(*client.delete_if_value(prefix + "name", "a"));
  EXPECT_TRUE(*client.put_if_absent(prefix + "name", "b", *lease));
  ASSERT_FALSE(client.revoke(*lease));
}

TEST_F(etcd_client_test, concurrent_put_if_absent_from_threads) {
  std::atomic<int> won{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      etcd_client c{{server_->url()}, 2000ms};
      auto r = c.put_if_absent(prefix + "x", std::to_string(i), 0);
      if (r && *r)
        ++won;
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(won.load(), 1);
}

TEST_F(etcd_client_test, keys_go_with_their_lease) {
  auto lease = client.grant(2s);
  ASSERT_TRUE(lease);
  auto ttl = client.keep_alive(*lease);
  ASSERT_TRUE(ttl);
  EXPECT_GE(*ttl, 1);
  auto start = client.put(prefix + "k", "v", *lease);
  ASSERT_TRUE(start);
  watcher w{server_->url(), prefix, *start + 1};
  // Nobody keeps it alive: etcd deletes the key when the lease expires
  // (etcd checks expiry every 500 ms).
  ASSERT_TRUE(w.wait_for(1, 10s));
  EXPECT_EQ(w.events[0].kind, etcd_event::type::del);
  EXPECT_EQ(w.events[0].kv.key, prefix + "k");
  auto gone = client.keep_alive(*lease);
  ASSERT_FALSE(gone);
  EXPECT_TRUE(relay::is(gone.error(), relay::errc::connection_closed));
}

TEST_F(etcd_client_test, watch_delivers_puts_and_deletes_in_order) {
  auto now = client.range(prefix, true);
  ASSERT_TRUE(now);
  watcher w{server_->url(), prefix, now->revision + 1};
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(client.put(prefix + std::to_string(i), std::to_string(i)));
  ASSERT_FALSE(client.erase(prefix + "3"));
  ASSERT_TRUE(w.wait_for(21, 10s));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(w.events[i].kind, etcd_event::type::put);
    EXPECT_EQ(w.events[i].kv.value, std::to_string(i));
  }
  EXPECT_EQ(w.events[20].kind, etcd_event::type::del);
}

TEST_F(etcd_client_test, an_unreachable_endpoint_is_a_clear_error) {
  etcd_client nowhere{{"http://127.0.0.1:1"}, 500ms};
  auto r = nowhere.put("k", "v");
  ASSERT_FALSE(r);
  EXPECT_TRUE(relay::is(r.error(), relay::errc::connect_failed))
    << relay::describe(r.error());
  // A second endpoint that works is used.
  etcd_client fallback{{"http://127.0.0.1:1", server_->url()}, 500ms};
  EXPECT_TRUE(fallback.put(prefix + "k", "v"));
}
