// The embedded membership state: merges, leader duties, reachability and
// the partition resolver, with time passed in and gossip delivered by hand.

#include "membership.hpp"

#include <gtest/gtest.h>

#include <random>

using namespace std::chrono_literals;
using namespace relay;
using namespace relay::cluster_detail;

namespace {

caf::node_id make_id(uint8_t seed) {
  caf::node_id::default_data::host_id_type host{};
  for (size_t i = 0; i < host.size(); ++i)
    host[i] = static_cast<uint8_t>(seed * 31 + i + 1);
  return caf::make_node_id(1000 + seed, host);
}

member_info make_member(uint8_t seed, std::string name) {
  member_info m;
  m.node = make_id(seed);
  m.name = name;
  m.address = "tcp://127.0.0.1:" + std::to_string(4000 + seed);
  return m;
}

std::vector<std::string> kinds(const std::vector<member_event>& events) {
  std::vector<std::string> result;
  for (auto& ev : events)
    result.push_back(ev.member.name + ":" + to_string(ev.kind));
  return result;
}

using strings = std::vector<std::string>;

// Three nodes a < b < c by address, all up, all knowing each other.
struct trio : testing::Test {
  clock::time_point t = clock::now();
  member_info ia = make_member(1, "a");
  member_info ib = make_member(2, "b");
  member_info ic = make_member(3, "c");
  membership a{"test", ia};
  membership b{"test", ib};
  membership c{"test", ic};

  // Gossips until nothing changes.
  void converge() {
    for (int round = 0; round < 4; ++round) {
      for (auto* from : {&a, &b, &c})
        for (auto* to : {&a, &b, &c})
          if (from != to && to->self_status() < member_status::down
              && from->self_status() < member_status::down)
            to->merge(from->snapshot(), t);
      for (auto* x : {&a, &b, &c})
        x->tick(t, 10s);
    }
  }

  void SetUp() override {
    a.form(t);
    ASSERT_TRUE(a.admit(ib, t));
    ASSERT_TRUE(a.admit(ic, t));
    b.merge(a.snapshot(), t);
    c.merge(a.snapshot(), t);
    converge();
    for (auto* x : {&a, &b, &c})
      for (auto& m : x->members())
        ASSERT_EQ(m.status, member_status::up) << m.name;
  }
};

} // namespace

TEST(membership, a_node_forms_a_cluster_alone) {
  auto t = clock::now();
  membership a{"test", make_member(1, "a")};
  EXPECT_EQ(a.self_status(), member_status::joining);
  EXPECT_EQ(kinds(a.form(t)), strings{"a:up"});
  EXPECT_EQ(a.leader(), make_id(1));
}

TEST(membership, a_joiner_is_joining_then_up_everywhere) {
  auto t = clock::now();
  membership a{"test", make_member(1, "a")};
  membership b{"test", make_member(2, "b")};
  a.form(t);
  auto admitted = a.admit(make_member(2, "b"), t);
  ASSERT_TRUE(admitted);
  EXPECT_EQ(kinds(*admitted), strings{"b:joining"});
  // The joiner learns the cluster from the welcome.
  EXPECT_EQ(kinds(b.merge(a.snapshot(), t)), strings{"a:up"});
  // The leader moves it up; the joiner hears it by gossip.
  EXPECT_EQ(kinds(b.tick(t, 10s)), strings{}); // b does not lead
  EXPECT_EQ(kinds(a.tick(t, 10s)), strings{"b:up"});
  EXPECT_EQ(kinds(b.merge(a.snapshot(), t)), strings{"b:up"});
  EXPECT_EQ(b.self_status(), member_status::up);
  // Merging again changes nothing.
  EXPECT_TRUE(b.merge(a.snapshot(), t).empty());
  EXPECT_TRUE(a.merge(b.snapshot(), t).empty());
}

TEST_F(trio, merging_is_order_independent) {
  // Two changes on different nodes, merged in opposite orders.
  a.observe(make_id(3), false, t);
  b.leave(t);
  membership x{"test", make_member(9, "x")};
  membership y{"test", make_member(9, "x")};
  x.merge(a.snapshot(), t);
  x.merge(b.snapshot(), t);
  y.merge(b.snapshot(), t);
  y.merge(a.snapshot(), t);
  auto sx = x.members();
  auto sy = y.members();
  ASSERT_EQ(sx.size(), sy.size());
  for (size_t i = 0; i < sx.size(); ++i) {
    EXPECT_EQ(sx[i].node, sy[i].node);
    EXPECT_EQ(sx[i].status, sy[i].status);
    EXPECT_EQ(sx[i].reachable, sy[i].reachable);
  }
}

TEST_F(trio, unreachable_then_reachable_again_before_down_after) {
  EXPECT_EQ(kinds(a.observe(make_id(3), false, t)), strings{"c:unreachable"});
  EXPECT_EQ(kinds(b.merge(a.snapshot(), t)), strings{"c:unreachable"});
  // Healed within down-after: nobody is downed.
  t += 5s;
  EXPECT_TRUE(a.tick(t, 10s).empty());
  EXPECT_EQ(kinds(a.observe(make_id(3), true, t)), strings{"c:reachable"});
  EXPECT_EQ(kinds(b.merge(a.snapshot(), t)), strings{"c:reachable"});
  EXPECT_EQ(a.find(make_id(3))->status, member_status::up);
}

TEST_F(trio, any_observer_makes_a_member_unreachable) {
  b.observe(make_id(3), false, t);
  EXPECT_EQ(kinds(a.merge(b.snapshot(), t)), strings{"c:unreachable"});
  // a itself still reaches c; b's observation decides until b retracts it.
  EXPECT_TRUE(a.unreachable(make_id(3)));
  b.observe(make_id(3), true, t);
  EXPECT_EQ(kinds(a.merge(b.snapshot(), t)), strings{"c:reachable"});
}

TEST_F(trio, the_majority_downs_and_removes_a_lost_member) {
  a.observe(make_id(3), false, t);
  b.observe(make_id(3), false, t);
  b.merge(a.snapshot(), t);
  a.merge(b.snapshot(), t);
  EXPECT_EQ(a.resolve(t + 9s, 10s), downing_result::none);
  EXPECT_EQ(a.resolve(t + 10s, 10s), downing_result::down_others);
  // Only the leader (a, lowest address) acts.
  EXPECT_TRUE(b.tick(t + 10s, 10s).empty());
  EXPECT_EQ(kinds(a.tick(t + 10s, 10s)), strings{"c:down"});
  EXPECT_EQ(kinds(a.tick(t + 10s, 10s)), strings{"c:removed"});
  EXPECT_EQ(kinds(b.merge(a.snapshot(), t + 10s)), strings{"c:removed"});
  EXPECT_EQ(a.members().size(), 2u);
  EXPECT_TRUE(a.is_removed(make_id(3)));
  // The minority side (c, which reaches nobody) removes itself.
  c.observe(make_id(1), false, t);
  c.observe(make_id(2), false, t);
  EXPECT_EQ(c.resolve(t + 10s, 10s), downing_result::down_self);
  EXPECT_EQ(kinds(c.tick(t + 10s, 10s)), (strings{"c:down", "c:removed"}));
  EXPECT_EQ(c.self_status(), member_status::removed);
}

TEST_F(trio, a_removed_incarnation_cannot_come_back) {
  a.observe(make_id(3), false, t);
  a.tick(t + 10s, 10s);
  a.tick(t + 10s, 10s);
  ASSERT_TRUE(a.is_removed(make_id(3)));
  EXPECT_FALSE(a.admit(ic, t + 11s));
  // Its stale gossip does not resurrect it either.
  a.merge(c.snapshot(), t + 11s);
  EXPECT_TRUE(a.is_removed(make_id(3)));
  // Gossip telling c it was removed makes c know it.
  EXPECT_EQ(kinds(c.merge(a.snapshot(), t + 11s)), strings{"c:removed"});
}

TEST_F(trio, a_restart_at_the_same_address_downs_the_old_incarnation) {
  auto c2 = ic;
  c2.node = make_id(7);
  auto events = a.admit(c2, t);
  ASSERT_TRUE(events);
  EXPECT_EQ(kinds(*events), (strings{"c:down", "c:joining"}));
  a.tick(t, 10s);
  EXPECT_EQ(a.find(make_id(3))->status, member_status::removed);
  EXPECT_EQ(a.find(make_id(7))->status, member_status::up);
}

TEST_F(trio, a_graceful_leave_is_removed_at_once) {
  EXPECT_EQ(kinds(b.leave(t)), strings{"b:left"});
  EXPECT_EQ(kinds(a.merge(b.snapshot(), t)), strings{"b:left"});
  EXPECT_EQ(kinds(a.tick(t, 10s)), strings{"b:removed"});
  EXPECT_EQ(kinds(c.merge(a.snapshot(), t)), strings{"b:removed"});
  EXPECT_EQ(kinds(b.remove_self(t)), strings{"b:removed"});
}

TEST(membership, a_tie_keeps_the_side_with_the_lowest_address) {
  auto t = clock::now();
  auto ia = make_member(1, "a");
  auto ib = make_member(2, "b");
  membership a{"test", ia};
  membership b{"test", ib};
  a.form(t);
  a.admit(ib, t);
  a.tick(t, 10s);
  b.merge(a.snapshot(), t);
  a.observe(ib.node, false, t);
  b.observe(ia.node, false, t);
  EXPECT_EQ(a.resolve(t + 10s, 10s), downing_result::down_others);
  EXPECT_EQ(b.resolve(t + 10s, 10s), downing_result::down_self);
}

TEST(membership, the_leader_is_the_lowest_reachable_up_member) {
  auto t = clock::now();
  membership a{"test", make_member(1, "a")};
  a.form(t);
  a.admit(make_member(2, "b"), t);
  a.tick(t, 10s);
  membership b{"test", make_member(2, "b")};
  b.merge(a.snapshot(), t);
  EXPECT_EQ(b.leader(), make_id(1));
  b.observe(make_id(1), false, t);
  EXPECT_EQ(b.leader(), make_id(2));
}

TEST(membership, tombstones_are_bounded) {
  auto t = clock::now();
  membership a{"test", make_member(1, "a")};
  a.form(t);
  gossip_state g;
  g.cluster = "test";
  g.members.push_back(*a.find(make_id(1)));
  for (size_t i = 0; i < membership::max_tombstones + 100; ++i) {
    member_info m;
    caf::node_id::default_data::host_id_type host{};
    for (size_t k = 0; k < 8; ++k)
      host[k] = static_cast<uint8_t>((i >> (8 * k)) & 0xff);
    host[19] = 0x55;
    m.node = caf::make_node_id(7, host);
    m.status = member_status::removed;
    g.members.push_back(m);
  }
  EXPECT_TRUE(a.merge(g, t).empty()); // tombstones of strangers: no events
  EXPECT_LE(a.snapshot().members.size(), membership::max_tombstones + 1);
}

TEST_F(trio, a_link_broken_between_two_members_spares_the_bystander) {
  // Only a-b is broken; c reaches both.
  a.observe(make_id(2), false, t);
  b.observe(make_id(1), false, t);
  for (auto* x : {&a, &b, &c})
    for (auto* y : {&a, &b, &c})
      if (x != y)
        x->merge(y->snapshot(), t);
  EXPECT_TRUE(c.unreachable(make_id(1)));
  EXPECT_TRUE(c.unreachable(make_id(2)));
  // c counts sides by what it reaches itself: everyone. It does nothing.
  EXPECT_EQ(c.resolve(t + 10s, 10s), downing_result::none);
  EXPECT_TRUE(c.tick(t + 10s, 10s).empty());
  EXPECT_EQ(c.self_status(), member_status::up);
  // a and b each reach two of three and act against the other (Akka's
  // "indirectly connected" members go).
  EXPECT_EQ(a.resolve(t + 10s, 10s), downing_result::down_others);
  EXPECT_EQ(b.resolve(t + 10s, 10s), downing_result::down_others);
}

TEST(membership, a_joiners_observations_do_not_count) {
  auto t = clock::now();
  auto ia = make_member(1, "a");
  auto ij = make_member(5, "j");
  membership a{"test", ia};
  membership j{"test", ij};
  a.form(t);
  ASSERT_TRUE(a.admit(ij, t));
  j.merge(a.snapshot(), t);
  // The joiner cannot reach a (a bad route, say) and says so.
  j.observe(ia.node, false, t);
  EXPECT_TRUE(a.merge(j.snapshot(), t).empty());
  EXPECT_FALSE(a.unreachable(ia.node));
}

TEST(membership, a_joiner_that_stays_unreachable_is_downed) {
  auto t = clock::now();
  auto ia = make_member(1, "a");
  auto ib = make_member(2, "b");
  auto ij = make_member(5, "j");
  membership a{"test", ia};
  a.form(t);
  a.admit(ib, t);
  a.tick(t, 10s);
  // j asked to join, then a could not reach it before it was up.
  a.observe(ij.node, false, t); // unknown yet: ignored
  a.admit(ij, t);
  a.observe(ij.node, false, t);
  EXPECT_TRUE(a.tick(t + 1s, 10s).empty()); // neither up nor down yet
  EXPECT_EQ(kinds(a.tick(t + 10s, 10s)), strings{"j:down"});
  EXPECT_EQ(kinds(a.tick(t + 10s, 10s)), strings{"j:removed"});
}

// -- the etcd backend's view: etcd decides, membership keeps the view -------

namespace {

// What a member's key in etcd says: the record with its status.
gossip_state etcd_put(const member_info& m, member_status status) {
  gossip_state g;
  g.cluster = "test";
  g.members.push_back(m);
  g.members.back().status = status;
  return g;
}

} // namespace

TEST(membership, etcd_keys_drive_the_view_in_their_order) {
  auto t = clock::now();
  auto ia = make_member(1, "a");
  auto ib = make_member(2, "b");
  membership a{"test", ia};
  // a's own key appears: a is up. Then b's.
  EXPECT_EQ(kinds(a.merge(etcd_put(ia, member_status::up), t)),
            strings{"a:up"});
  EXPECT_EQ(a.self_status(), member_status::up);
  EXPECT_EQ(kinds(a.merge(etcd_put(ib, member_status::up), t)),
            strings{"b:up"});
  // b's lease expired: down, then removed; it cannot come back.
  EXPECT_EQ(kinds(a.expel(ib.node, t)), (strings{"b:down", "b:removed"}));
  EXPECT_TRUE(a.expel(ib.node, t).empty());
  EXPECT_TRUE(a.merge(etcd_put(ib, member_status::up), t).empty());
  EXPECT_TRUE(a.is_removed(ib.node));
}

TEST(membership, etcd_a_member_that_left_is_only_removed) {
  auto t = clock::now();
  auto ia = make_member(1, "a");
  auto ib = make_member(2, "b");
  membership a{"test", ia};
  a.merge(etcd_put(ia, member_status::up), t);
  a.merge(etcd_put(ib, member_status::up), t);
  EXPECT_EQ(kinds(a.merge(etcd_put(ib, member_status::left), t)),
            strings{"b:left"});
  EXPECT_EQ(kinds(a.expel(ib.node, t)), strings{"b:removed"});
  // This node's own key deleted by the leader: it is out.
  EXPECT_EQ(kinds(a.expel(ia.node, t)), (strings{"a:down", "a:removed"}));
  EXPECT_EQ(a.self_status(), member_status::removed);
}

TEST_F(trio, etcd_plan_downing_follows_keep_majority) {
  // c is cut off from a and b; both sides' rows are known everywhere (in
  // etcd, every row is a key that every member watches).
  a.observe(make_id(3), false, t);
  b.observe(make_id(3), false, t);
  c.observe(make_id(1), false, t);
  c.observe(make_id(2), false, t);
  a.merge(b.snapshot(), t);
  a.merge(c.snapshot(), t); // c's row too: it lists a and b
  // a sees its own side's view: c's suspicions (from across the partition)
  // do not make b unreachable here.
  EXPECT_TRUE(a.unreachable(make_id(3)));
  EXPECT_FALSE(a.unreachable(make_id(2)));
  EXPECT_FALSE(a.unreachable(make_id(1)));
  // Before down_after nothing happens.
  EXPECT_TRUE(a.plan_downing(t + 5s, 10s).down.empty());
  EXPECT_FALSE(c.plan_downing(t + 5s, 10s).down_self);
  // After it the leader (a) downs c, b (not the leader) does nothing, and c
  // removes itself.
  auto plan = a.plan_downing(t + 10s, 10s);
  EXPECT_FALSE(plan.down_self);
  EXPECT_EQ(plan.down, std::vector<caf::node_id>{make_id(3)});
  EXPECT_TRUE(b.plan_downing(t + 10s, 10s).down.empty());
  EXPECT_TRUE(c.plan_downing(t + 10s, 10s).down_self);
  // The own row is what this node writes to etcd.
  EXPECT_EQ(c.own_row().unreachable.size(), 2u);
  EXPECT_EQ(a.own_row().unreachable, std::vector<caf::node_id>{make_id(3)});
  EXPECT_EQ(a.own_row().observer, make_id(1));
}
