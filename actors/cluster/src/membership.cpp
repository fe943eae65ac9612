#include "membership.hpp"

#include <algorithm>
#include <tuple>

namespace relay {

const char* to_string(member_status x) noexcept {
  switch (x) {
    case member_status::joining:
      return "joining";
    case member_status::up:
      return "up";
    case member_status::left:
      return "left";
    case member_status::down:
      return "down";
    case member_status::removed:
      return "removed";
  }
  return "?";
}

const char* to_string(member_event_kind x) noexcept {
  switch (x) {
    case member_event_kind::joining:
      return "joining";
    case member_event_kind::up:
      return "up";
    case member_event_kind::unreachable:
      return "unreachable";
    case member_event_kind::reachable:
      return "reachable";
    case member_event_kind::left:
      return "left";
    case member_event_kind::down:
      return "down";
    case member_event_kind::removed:
      return "removed";
  }
  return "?";
}

} // namespace relay

namespace relay::cluster_detail {

namespace {

member_event_kind event_of(member_status x) {
  switch (x) {
    case member_status::joining:
      return member_event_kind::joining;
    case member_status::up:
      return member_event_kind::up;
    case member_status::left:
      return member_event_kind::left;
    case member_status::down:
      return member_event_kind::down;
    case member_status::removed:
      break;
  }
  return member_event_kind::removed;
}

// Reachability matters (and is reported) only for these.
bool active(member_status x) {
  return x == member_status::joining || x == member_status::up;
}

bool address_less(const member_info& x, const member_info& y) {
  return std::tie(x.address, x.node) < std::tie(y.address, y.node);
}

} // namespace

membership::membership(std::string cluster, member_info self)
  : cluster_(std::move(cluster)), self_(self.node) {
  self.status = member_status::joining;
  members_.emplace(self_, std::move(self));
}

const member_info* membership::find(const caf::node_id& node) const {
  auto i = members_.find(node);
  return i == members_.end() ? nullptr : &i->second;
}

member_status membership::self_status() const {
  return members_.at(self_).status;
}

bool membership::is_removed(const caf::node_id& node) const {
  auto m = find(node);
  return m != nullptr && m->status == member_status::removed;
}

bool membership::counts_as_observer(const caf::node_id& node) const {
  // Joiners do not count: a node whose dials fail while it joins must not
  // make healthy members unreachable.
  auto m = find(node);
  return m != nullptr
         && (m->status == member_status::up || m->status == member_status::left);
}

bool membership::unreachable(const caf::node_id& node) const {
  return unreachable_.count(node) > 0;
}

void membership::refresh_reachability() {
  // Once per change, not per question: with n members there are up to n^2
  // listed subjects, and the leader asks about every member on every tick.
  //
  // Only rows of observers this node still reaches count (and its own):
  // this is the view of this node's side. The etcd backend sees every row
  // at once, also those from across a partition, which would otherwise
  // make every member unreachable everywhere; gossip brings them only
  // after a heal, when they are retracted anyway.
  unreachable_.clear();
  std::set<caf::node_id> lost_here;
  if (auto i = rows_.find(self_); i != rows_.end())
    lost_here.insert(i->second.unreachable.begin(),
                     i->second.unreachable.end());
  for (auto& [observer, row] : rows_)
    if (counts_as_observer(observer)
        && (observer == self_ || lost_here.count(observer) == 0))
      unreachable_.insert(row.unreachable.begin(), row.unreachable.end());
}

std::vector<member_info> membership::members() const {
  std::vector<member_info> result;
  for (auto& [id, m] : members_) {
    if (m.status == member_status::removed)
      continue;
    result.push_back(m);
    result.back().reachable = !unreachable(id);
  }
  std::sort(result.begin(), result.end(), address_less);
  return result;
}

membership::view membership::current_view() const {
  view result;
  for (auto& [id, m] : members_)
    result.emplace(id, view_entry{m.status, !unreachable(id)});
  return result;
}

std::vector<member_event>
membership::diff(const view& before, clock::time_point now) {
  refresh_reachability();
  std::vector<member_event> events;
  auto emit = [&](member_event_kind kind, const member_info& m, bool r) {
    member_event ev;
    ev.kind = kind;
    ev.member = m;
    ev.member.reachable = r;
    events.push_back(std::move(ev));
  };
  // Once this node is out, its view of the others stops mattering (and its
  // own observations stop counting, which must not read as "reachable").
  bool self_out = members_.at(self_).status >= member_status::down;
  for (auto& [id, m] : members_) {
    if (self_out && id != self_)
      continue;
    bool reachable = !unreachable(id);
    auto i = before.find(id);
    bool known = i != before.end();
    if (!known && m.status == member_status::removed)
      continue; // a tombstone of a node we never knew
    if (!known || i->second.status != m.status)
      emit(event_of(m.status), m, reachable);
    bool was_reachable = known ? i->second.reachable : true;
    if (active(m.status) && reachable != was_reachable)
      emit(reachable ? member_event_kind::reachable
                     : member_event_kind::unreachable,
           m, reachable);
    if (reachable || !active(m.status))
      unreachable_since_.erase(id);
    else
      unreachable_since_.emplace(id, now); // keeps the first time
  }
  return events;
}

void membership::advance(const caf::node_id& node, member_status to) {
  auto i = members_.find(node);
  if (i == members_.end() || i->second.status >= to)
    return;
  i->second.status = to;
  if (to == member_status::removed)
    tombstone_order_.push_back(node);
}

void membership::prune() {
  auto gone = [this](const caf::node_id& x) {
    auto m = find(x);
    return m == nullptr || m->status == member_status::removed;
  };
  for (auto i = rows_.begin(); i != rows_.end();)
    i = gone(i->first) ? rows_.erase(i) : std::next(i);
  // Removed subjects leave this node's own row (its version moves on, so
  // the others take the shorter row).
  if (auto i = rows_.find(self_); i != rows_.end()) {
    auto& xs = i->second.unreachable;
    auto n = xs.size();
    xs.erase(std::remove_if(xs.begin(), xs.end(), gone), xs.end());
    if (xs.size() != n)
      ++i->second.version;
  }
  while (tombstone_order_.size() > max_tombstones) {
    members_.erase(tombstone_order_.front());
    tombstone_order_.erase(tombstone_order_.begin());
  }
  refresh_reachability();
}

std::vector<member_event> membership::form(clock::time_point now) {
  auto before = current_view();
  advance(self_, member_status::up);
  return diff(before, now);
}

std::optional<std::vector<member_event>>
membership::admit(const member_info& joiner, clock::time_point now) {
  if (auto m = find(joiner.node)) {
    if (m->status >= member_status::down)
      return std::nullopt;
    return std::vector<member_event>{}; // asked twice: already admitted
  }
  auto before = current_view();
  // The same address with another node id: that member restarted. Its old
  // incarnation is gone (Akka does the same).
  for (auto& [id, m] : members_)
    if (id != joiner.node && id != self_ && m.address == joiner.address
        && m.status < member_status::down)
      advance(id, member_status::down);
  auto record = joiner;
  record.status = member_status::joining;
  members_.emplace(joiner.node, record);
  auto events = diff(before, now);
  prune();
  return events;
}

std::vector<member_event> membership::merge(const gossip_state& other,
                                             clock::time_point now) {
  auto before = current_view();
  for (auto& m : other.members) {
    auto i = members_.find(m.node);
    if (i == members_.end()) {
      auto record = m;
      record.reachable = true;
      members_.emplace(m.node, std::move(record));
      if (m.status == member_status::removed)
        tombstone_order_.push_back(m.node);
    } else {
      advance(m.node, m.status);
    }
  }
  for (auto& row : other.rows) {
    if (row.observer == self_ || find(row.observer) == nullptr)
      continue; // our own row is ours; rows of strangers mean nothing
    auto i = rows_.find(row.observer);
    if (i == rows_.end())
      rows_.emplace(row.observer, row);
    else if (row.version > i->second.version)
      i->second = row;
  }
  auto events = diff(before, now);
  prune();
  return events;
}

std::vector<member_event> membership::observe(const caf::node_id& subject,
                                              bool reachable,
                                              clock::time_point now) {
  if (subject == self_ || find(subject) == nullptr)
    return {};
  auto& row = rows_[self_];
  row.observer = self_;
  auto& xs = row.unreachable;
  auto i = std::find(xs.begin(), xs.end(), subject);
  if ((i != xs.end()) == !reachable)
    return {}; // no change
  auto before = current_view();
  if (reachable)
    xs.erase(i);
  else
    xs.push_back(subject);
  ++row.version;
  return diff(before, now);
}

std::vector<member_event> membership::leave(clock::time_point now) {
  auto before = current_view();
  advance(self_, member_status::left);
  return diff(before, now);
}

std::vector<member_event> membership::remove_self(clock::time_point now) {
  auto before = current_view();
  if (self_status() != member_status::left)
    advance(self_, member_status::down);
  auto events = diff(before, now);
  before = current_view();
  advance(self_, member_status::removed);
  auto more = diff(before, now);
  events.insert(events.end(), more.begin(), more.end());
  prune();
  return events;
}

std::vector<member_event> membership::expel(const caf::node_id& node,
                                             clock::time_point now) {
  auto m = find(node);
  if (m == nullptr || m->status == member_status::removed)
    return {};
  if (node == self_)
    return remove_self(now);
  auto before = current_view();
  if (m->status != member_status::left)
    advance(node, member_status::down);
  auto events = diff(before, now);
  before = current_view();
  advance(node, member_status::removed);
  auto more = diff(before, now);
  events.insert(events.end(), more.begin(), more.end());
  prune();
  return events;
}

downing_plan membership::plan_downing(clock::time_point now,
                                      clock::duration down_after) const {
  downing_plan plan;
  if (self_status() != member_status::up)
    return plan;
  auto verdict = resolve(now, down_after);
  if (verdict == downing_result::down_self) {
    plan.down_self = true;
    return plan;
  }
  if (verdict != downing_result::down_others || leader() != self_)
    return plan;
  // Only members this node itself cannot reach: in etcd every row is seen
  // at once, also those of a member on the other side of a partition, and
  // what it cannot reach (this side) is not for this side to down.
  auto row = own_row();
  std::set<caf::node_id> lost_here(row.unreachable.begin(),
                                   row.unreachable.end());
  for (auto& [id, m] : members_) {
    if (id == self_ || m.status != member_status::up
        || lost_here.count(id) == 0)
      continue;
    auto i = unreachable_since_.find(id);
    if (i != unreachable_since_.end() && now - i->second >= down_after)
      plan.down.push_back(id);
  }
  return plan;
}

observation_row membership::own_row() const {
  if (auto i = rows_.find(self_); i != rows_.end())
    return i->second;
  observation_row row;
  row.observer = self_;
  return row;
}

caf::node_id membership::leader() const {
  const member_info* best = nullptr;
  for (auto& [id, m] : members_)
    if (m.status == member_status::up && (id == self_ || !unreachable(id))
        && (best == nullptr || address_less(m, *best)))
      best = &m;
  return best == nullptr ? caf::node_id{} : best->node;
}

downing_result membership::resolve(clock::time_point now,
                                   clock::duration down_after) const {
  if (self_status() != member_status::up)
    return downing_result::none;
  // Sides are counted by what this node itself reaches (its own row), not
  // by the union of everyone's suspicions: a link broken between two
  // others must not make a bystander think it is alone.
  std::set<caf::node_id> lost_here;
  if (auto i = rows_.find(self_); i != rows_.end())
    lost_here.insert(i->second.unreachable.begin(),
                     i->second.unreachable.end());
  size_t total = 0;
  size_t lost = 0;
  bool overdue = false;
  const member_info* lowest = nullptr;
  for (auto& [id, m] : members_) {
    if (m.status != member_status::up && m.status != member_status::left)
      continue;
    ++total;
    if (lowest == nullptr || address_less(m, *lowest))
      lowest = &m;
    if (id == self_ || lost_here.count(id) == 0)
      continue;
    ++lost;
    auto i = unreachable_since_.find(id);
    if (i != unreachable_since_.end() && now - i->second >= down_after)
      overdue = true;
  }
  if (lost == 0 || !overdue)
    return downing_result::none;
  auto kept = total - lost;
  if (2 * kept > total)
    return downing_result::down_others;
  if (2 * kept < total)
    return downing_result::down_self;
  bool lowest_kept = lowest->node == self_ || lost_here.count(lowest->node) == 0;
  return lowest_kept ? downing_result::down_others : downing_result::down_self;
}

std::vector<member_event> membership::tick(clock::time_point now,
                                           clock::duration down_after) {
  auto status = self_status();
  if (status >= member_status::down || status == member_status::joining)
    return {};
  auto verdict = resolve(now, down_after);
  if (verdict == downing_result::down_self)
    return remove_self(now);
  if (leader() != self_)
    return {};
  auto before = current_view();
  std::vector<caf::node_id> to_up, to_remove, to_down;
  for (auto& [id, m] : members_) {
    if (m.status == member_status::joining && !unreachable(id))
      to_up.push_back(id);
    else if (m.status == member_status::left
             || m.status == member_status::down)
      to_remove.push_back(id);
    else if (id != self_ && unreachable(id)
             && (m.status == member_status::joining
                 || (m.status == member_status::up
                     && verdict == downing_result::down_others))) {
      // Joiners do not count for the majority, so one that stays
      // unreachable is downed whatever the sides look like.
      auto i = unreachable_since_.find(id);
      if (i != unreachable_since_.end() && now - i->second >= down_after)
        to_down.push_back(id);
    }
  }
  for (auto& id : to_up)
    advance(id, member_status::up);
  for (auto& id : to_remove)
    advance(id, member_status::removed);
  for (auto& id : to_down)
    advance(id, member_status::down);
  auto events = diff(before, now);
  prune();
  return events;
}

gossip_state membership::snapshot() const {
  gossip_state result;
  result.cluster = cluster_;
  result.members.reserve(members_.size());
  for (auto& [id, m] : members_)
    result.members.push_back(m);
  for (auto& [observer, row] : rows_)
    if (row.version > 0)
      result.rows.push_back(row);
  return result;
}

} // namespace relay::cluster_detail
