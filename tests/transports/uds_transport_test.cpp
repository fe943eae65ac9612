// What only the uds transport does, over real sockets: addresses, socket
// files, the abstract namespace, peer credentials and uids. What every
// transport must do is in conformance_test.cpp. Every wait is bounded and
// synchronised on an event; nothing sleeps.

#include "uds/uds_transport.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/reactor.hpp"
#include "common/socket_util.hpp"
#include "common/stream_connection.hpp"
#include "relay/error.hpp"
#include "transport_test_support.hpp"
#include "uds/uds_address.hpp"

using namespace relay;
using namespace relay::test;
using namespace std::chrono_literals;

namespace {

class uds_transport_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/relay-uds-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    io_ = std::make_shared<reactor>();
    transport_ = std::make_unique<uds_transport>(io_, transport_options{});
  }

  void TearDown() override {
    transport_.reset();
    if (!dir_.empty())
      std::filesystem::remove_all(dir_);
  }

  std::string path(const std::string& name) const {
    return dir_ + "/" + name;
  }

  std::string uri(const std::string& name) const {
    return "uds://" + path(name);
  }

  static std::string abstract_uri(const std::string& tag) {
    static std::atomic<int> counter{0};
    return "uds:@relay-test-" + std::to_string(::getpid()) + "-" + tag + "-"
           + std::to_string(counter++);
  }

  connected_pair make_pair(const std::string& where) {
    return connect_pair(*transport_, *transport_, where, accepted_, io_);
  }

  std::string dir_;
  std::shared_ptr<reactor> io_;
  std::unique_ptr<uds_transport> transport_;
  accept_queue accepted_;
};

} // namespace

// -- addresses ----------------------------------------------------------------

TEST(uds_address_test, parses_paths_and_abstract_names) {
  auto path = uds_address::parse(*endpoint::parse("uds:///run/app/a.sock"));
  ASSERT_TRUE(path);
  EXPECT_FALSE(path->abstract);
  EXPECT_EQ(path->name, "/run/app/a.sock");
  EXPECT_EQ(path->uri(), "uds:///run/app/a.sock");
  auto name = uds_address::parse(*endpoint::parse("uds:@relay.node"));
  ASSERT_TRUE(name);
  EXPECT_TRUE(name->abstract);
  EXPECT_EQ(name->name, "relay.node");
  EXPECT_EQ(name->uri(), "uds:@relay.node");
  auto longest = "uds://" + std::string("/") + std::string(uds_address::max_length - 1, 'x');
  EXPECT_TRUE(uds_address::parse(*endpoint::parse(longest)));
}

TEST(uds_address_test, rejects_malformed_addresses) {
  auto too_long = "uds://" + std::string("/")
                  + std::string(uds_address::max_length, 'x');
  for (std::string bad : {"uds:///", "uds:relative/path", "uds:/one/slash",
                          "uds://host/path", "uds:@", "uds:////double",
                          "uds:///dir/", too_long.c_str()}) {
    auto parsed = uds_address::parse(*endpoint::parse(bad));
    ASSERT_FALSE(parsed) << bad;
    EXPECT_TRUE(is(parsed.error(), errc::invalid_uri)) << str(parsed.error());
    EXPECT_TRUE(contains(str(parsed.error()), bad)) << str(parsed.error());
  }
  auto parsed = uds_address::parse(*endpoint::parse(too_long));
  EXPECT_TRUE(contains(str(parsed.error()), "limit of 107 bytes"))
    << str(parsed.error());
}

// -- frames -------------------------------------------------------------------













// -- socket files -------------------------------------------------------------

TEST_F(uds_transport_test, peer_names_carry_the_peer_credentials) {
  auto p = make_pair(uri("names.sock"));
  ASSERT_TRUE(p.client && p.server);
  auto creds = "(pid " + std::to_string(::getpid()) + ", uid "
               + std::to_string(::geteuid()) + ")";
  EXPECT_EQ(p.client->peer_name(), uri("names.sock") + " " + creds);
  EXPECT_EQ(p.server->peer_name(), uri("names.sock") + " " + creds);
}

TEST_F(uds_transport_test, socket_file_is_created_0600) {
  auto old_mask = ::umask(0); // the mode must not depend on the umask
  auto listener = transport_->listen(ep(uri("mode.sock")), accepted_.callback());
  ::umask(old_mask);
  ASSERT_TRUE(listener) << str(listener.error());
  struct stat st{};
  ASSERT_EQ(::lstat(path("mode.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ((*listener)->uri(), uri("mode.sock"));
}

TEST_F(uds_transport_test, stale_socket_file_is_replaced) {
  { // a socket bound and abandoned without unlink
    unique_fd fd{::socket(AF_UNIX, SOCK_STREAM, 0)};
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path("stale.sock").c_str());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  }
  ASSERT_TRUE(std::filesystem::exists(path("stale.sock")));
  auto refused = transport_->connect(ep(uri("stale.sock")));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), errc::connect_failed));
  EXPECT_TRUE(contains(str(refused.error()), "nobody is listening"))
    << str(refused.error());
  auto p = make_pair(uri("stale.sock"));
  ASSERT_TRUE(p.client && p.server);
  ASSERT_FALSE(p.client->send(make_frame("works")));
  ASSERT_TRUE(p.server_rec->wait_frames(1));
}

TEST_F(uds_transport_test, live_listener_is_not_taken_over) {
  auto first = transport_->listen(ep(uri("live.sock")), accepted_.callback());
  ASSERT_TRUE(first) << str(first.error());
  accept_queue other;
  auto second = transport_->listen(ep(uri("live.sock")), other.callback());
  ASSERT_FALSE(second);
  EXPECT_TRUE(is(second.error(), errc::listen_failed));
  EXPECT_TRUE(contains(str(second.error()), "already in use by a live listener"))
    << str(second.error());
  EXPECT_TRUE(contains(str(second.error()), uri("live.sock")));
  // The probe reached the first listener and hung up.
  auto probe = accepted_.pop();
  ASSERT_NE(probe, nullptr);
  auto probe_rec = std::make_shared<recorder>(io_);
  probe->start(probe_rec);
  ASSERT_TRUE(probe_rec->wait_closed());
  // The first listener still serves.
  auto client = transport_->connect(ep(uri("live.sock")));
  ASSERT_TRUE(client) << str(client.error());
  ASSERT_NE(accepted_.pop(), nullptr);
  EXPECT_EQ(other.total(), 0u);
}

TEST_F(uds_transport_test, non_socket_file_is_left_alone) {
  { std::ofstream{path("data.txt")} << "precious"; }
  auto listener = transport_->listen(ep(uri("data.txt")), accepted_.callback());
  ASSERT_FALSE(listener);
  EXPECT_TRUE(is(listener.error(), errc::listen_failed));
  EXPECT_TRUE(contains(str(listener.error()), "not a socket"))
    << str(listener.error());
  std::ifstream in{path("data.txt")};
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(uds_transport_test, destroying_the_acceptor_removes_its_file) {
  auto listener = transport_->listen(ep(uri("gone.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  ASSERT_TRUE(std::filesystem::exists(path("gone.sock")));
  listener->reset();
  EXPECT_FALSE(std::filesystem::exists(path("gone.sock")));
  auto refused = transport_->connect(ep(uri("gone.sock")));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(is(refused.error(), errc::connect_failed));
  EXPECT_TRUE(contains(str(refused.error()), "no such socket"))
    << str(refused.error());
  EXPECT_EQ(accepted_.total(), 0u);
}

TEST_F(uds_transport_test, acceptor_leaves_a_replaced_file_alone) {
  auto listener = transport_->listen(ep(uri("swap.sock")), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  ASSERT_EQ(::unlink(path("swap.sock").c_str()), 0);
  { std::ofstream{path("swap.sock")} << "someone else's"; }
  listener->reset();
  EXPECT_TRUE(std::filesystem::exists(path("swap.sock")));
}

TEST_F(uds_transport_test, listen_reports_missing_directory) {
  auto listener = transport_->listen(ep(uri("no/such/dir.sock")),
                                     accepted_.callback());
  ASSERT_FALSE(listener);
  EXPECT_TRUE(is(listener.error(), errc::listen_failed));
  EXPECT_TRUE(contains(str(listener.error()), uri("no/such/dir.sock")));
}

// -- abstract namespace -------------------------------------------------------

TEST_F(uds_transport_test, abstract_namespace_works) {
  auto where = abstract_uri("abs");
  auto p = make_pair(where);
  ASSERT_TRUE(p.client && p.server);
  EXPECT_EQ(p.listener->uri(), where);
  ASSERT_FALSE(p.client->send(make_frame("hi")));
  ASSERT_TRUE(p.server_rec->wait_frames(1));
  ASSERT_FALSE(p.server->send(make_frame("there")));
  ASSERT_TRUE(p.client_rec->wait_frames(1));
  auto twice = transport_->listen(ep(where), accepted_.callback());
  ASSERT_FALSE(twice);
  EXPECT_TRUE(contains(str(twice.error()), "already in use by a live listener"));
  p.listener.reset();
  auto refused = transport_->connect(ep(where));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(contains(str(refused.error()), "nobody is listening"))
    << str(refused.error());
}

// -- many peers ---------------------------------------------------------------


// -- other uids (root only: a child process drops to "nobody") ----------------

TEST_F(uds_transport_test, peer_of_another_uid_is_rejected_by_the_listener) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to run a peer under another uid";
  auto where = abstract_uri("uid");
  auto listener = transport_->listen(ep(where), accepted_.callback());
  ASSERT_TRUE(listener) << str(listener.error());
  sockaddr_un sa;
  auto len = uds_address::parse(ep(where))->to_sockaddr(sa);
  testing::internal::CaptureStderr();
  auto child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::alarm(10); // never outlive a broken test
    if (::setuid(65534) != 0)
      ::_exit(10);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0)
      ::_exit(11);
    char c;
    ::_exit(::read(fd, &c, 1) <= 0 ? 0 : 12); // the listener hangs up
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  auto log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(contains(log, "relay: warning: " + where + ": rejected peer pid "
                              + std::to_string(child)
                              + " uid 65534: uid differs from 0"))
    << log;
  EXPECT_EQ(accepted_.total(), 0u);
  EXPECT_EQ(transport_->rejected_peers(), 1u);
}

TEST_F(uds_transport_test, listener_of_another_uid_is_rejected_by_the_connector) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to run a listener under another uid";
  auto where = abstract_uri("uid-listener");
  sockaddr_un sa;
  auto len = uds_address::parse(ep(where))->to_sockaddr(sa);
  int ready[2];
  int done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  auto child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::alarm(10);
    ::close(ready[0]);
    ::close(done[1]);
    if (::setuid(65534) != 0)
      ::_exit(10);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0
        || ::listen(fd, 8) != 0)
      ::_exit(11);
    char c = 'r';
    if (::write(ready[1], &c, 1) != 1)
      ::_exit(12);
    ::read(done[0], &c, 1); // until the parent is done
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(done[0]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  auto conn = transport_->connect(ep(where));
  transport_options lenient;
  lenient.allow_other_uids = true;
  uds_transport tolerant{io_, lenient};
  auto allowed = tolerant.connect(ep(where));
  ::close(done[1]);
  ::close(ready[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_FALSE(conn);
  EXPECT_TRUE(is(conn.error(), errc::peer_rejected)) << str(conn.error());
  EXPECT_TRUE(contains(str(conn.error()), "uid 65534")) << str(conn.error());
  ASSERT_TRUE(allowed) << str(allowed.error());
  EXPECT_TRUE(contains((*allowed)->peer_name(), "uid 65534"));
}
