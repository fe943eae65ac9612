// Deployment files: what a valid file gives, and that a bad one names its
// line, column and key before anything starts.

#include "relay/deployment.hpp"

#include <gtest/gtest.h>

#include "relay/error.hpp"

namespace relay {
namespace {

std::string error_of(const std::string& text) {
  auto d = parse_deployment(text, "demo.toml", "/");
  return d ? std::string{"no error"} : describe(d.error());
}

TEST(deployment, a_valid_file_gives_the_tree) {
  auto d = parse_deployment(R"(
[supervisor]
name = "demo"
strategy = "rest_for_one"
intensity = 5
period = "10s"

[[process]]
id = "coordinator"
executable = "/bin/true"
args = ["--items", "100"]
env = { MODE = "fast" }

[[process]]
id = "worker"
executable = "bin/true"
count = 3
channel = "shm"
restart = "transient"
shutdown = "250ms"
start_timeout = "2s"
)",
                            "demo.toml", "/");
  ASSERT_TRUE(d) << describe(d.error());
  EXPECT_EQ(d->supervisor.name, "demo");
  EXPECT_EQ(d->supervisor.strategy, restart_strategy::rest_for_one);
  EXPECT_EQ(d->supervisor.intensity, 5u);
  EXPECT_EQ(d->supervisor.period, std::chrono::seconds{10});
  ASSERT_EQ(d->processes.size(), 2u);
  auto& c = d->processes[0];
  EXPECT_EQ(c.spec.args, (std::vector<std::string>{"--items", "100"}));
  EXPECT_EQ(c.spec.env.at("MODE"), "fast");
  EXPECT_EQ(c.channel, "socketpair");
  auto& w = d->processes[1];
  EXPECT_EQ(w.spec.executable, "/bin/true") << "relative to the file's directory";
  EXPECT_EQ(w.count, 3u);
  EXPECT_EQ(w.restart, restart_type::transient);
  ASSERT_TRUE(w.shutdown);
  EXPECT_EQ(w.shutdown->timeout, std::chrono::milliseconds{250});
  EXPECT_EQ(w.spec.start_timeout, std::chrono::seconds{2});
  EXPECT_EQ(d->endpoint_channels(), (std::vector<std::string>{"shm"}));
}

TEST(deployment, a_bad_file_names_the_line_and_the_key) {
  EXPECT_EQ(error_of("[[process]]\nid = \"a\"\nexecutable = \"/bin/true\"\ncolour = 1\n"),
            "relay.invalid_argument: demo.toml:4:10: process[0].colour: unknown key");
  EXPECT_EQ(error_of("[supervisor]\nstrategy = \"one_for_none\"\n"),
            "relay.invalid_argument: demo.toml:2:12: supervisor.strategy: "
            "'one_for_none' is not one_for_one, one_for_all or rest_for_one");
  auto syntax = error_of("[supervisor\n");
  EXPECT_NE(syntax.find("demo.toml:1:"), std::string::npos) << syntax;
  auto missing = error_of("[[process]]\nid = \"a\"\nexecutable = \"/no/such/exe\"\n");
  EXPECT_NE(missing.find("demo.toml:3:14: process[0].executable: '/no/such/exe' is not "
                         "an executable file"),
            std::string::npos)
    << missing;
  auto twice = error_of("[[process]]\nid = \"a\"\nexecutable = \"/bin/true\"\n"
                        "[[process]]\nid = \"a\"\nexecutable = \"/bin/true\"\n");
  EXPECT_NE(twice.find("demo.toml:5:6: process[1].id: 'a' is used twice"),
            std::string::npos)
    << twice;
  auto duration = error_of("[[process]]\nid = \"a\"\nexecutable = \"/bin/true\"\n"
                           "shutdown = \"soon\"\n");
  EXPECT_NE(duration.find("demo.toml:4:12: process[0].shutdown: 'soon' is not a duration"),
            std::string::npos)
    << duration;
  EXPECT_NE(error_of("").find("process: missing"), std::string::npos);
  auto count = error_of("[[process]]\nid = \"a\"\nexecutable = \"/bin/true\"\ncount = 0\n");
  EXPECT_NE(count.find("process[0].count: must be between 1 and 256"), std::string::npos)
    << count;
}

} // namespace
} // namespace relay
