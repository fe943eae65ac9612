// A program built against an installed Relay: one node with the cluster
// module (alone, it forms a cluster of one), a published actor, a message
// type, and a local request.
#include <cstdio>

#include <caf/all.hpp>
#include <cereal/types/string.hpp>

#include <relay/cluster.hpp>
#include <relay/node.hpp>

struct greeting {
  std::string text;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(text);
  }
};

RELAY_MESSAGE_TYPE(greeting, "consumer.greeting")

int main() {
  relay::node_config cfg;
  cfg.add_message_type<greeting>();
  auto& cluster = cfg.add_module<relay::cluster_module>();
  relay::node node{cfg};
  cluster.join({cluster.address()});
  if (auto err = cluster.wait_up(std::chrono::seconds{10})) {
    fprintf(stderr, "cluster: %s\n", relay::describe(err).c_str());
    return 1;
  }
  auto echo = node.system().spawn([]() -> caf::behavior {
    return {[](const greeting& g) { return g; }};
  });
  if (auto err = node.publish(echo, "echo")) {
    fprintf(stderr, "%s\n", relay::describe(err).c_str());
    return 1;
  }
  int rc = 1;
  caf::scoped_actor self{node.system()};
  self->request(echo, std::chrono::seconds{5}, greeting{"hi"})
    .receive([&](const greeting& g) { rc = g.text == "hi" ? 0 : 1; },
             [&](caf::error&) {});
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  printf("consumer: %s\n", rc == 0 ? "ok" : "failed");
  return rc;
}
