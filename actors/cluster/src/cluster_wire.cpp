#include "cluster_wire.hpp"

#include <cereal/types/array.hpp>
#include <cereal/types/string.hpp>

namespace relay::cluster_detail {

namespace {

using host_id = caf::node_id::default_data::host_id_type;

void check_string(const std::string& x, size_t bound, const char* what) {
  if (x.size() > bound)
    throw wire_error(std::string{what} + " longer than "
                     + std::to_string(bound) + " bytes");
}

uint64_t read_count(wire_reader& in, size_t bound, const char* what) {
  uint64_t n = 0;
  in(n);
  if (n > bound)
    throw wire_error(std::to_string(n) + " " + what + " (at most "
                     + std::to_string(bound) + ")");
  in.check_size(n);
  return n;
}

} // namespace

void write(wire_writer& out, const caf::node_id& x) {
  if (!x || x->implementation_id() != caf::node_id::default_data::class_id)
    throw wire_error("cannot write a node id that is not Relay's");
  auto& data = static_cast<const caf::node_id::default_data&>(*x);
  out(data.process_id(), data.host_id());
}

caf::node_id read_node(wire_reader& in) {
  uint32_t pid = 0;
  host_id host{};
  in(pid, host);
  if (!caf::node_id::default_data::valid(host))
    throw wire_error("invalid node id");
  return caf::make_node_id(pid, host);
}

void write(wire_writer& out, const member_info& x) {
  write(out, x.node);
  out(x.name, x.address, static_cast<uint8_t>(x.status));
}

member_info read_member(wire_reader& in) {
  member_info x;
  x.node = read_node(in);
  uint8_t status = 0;
  in(x.name, x.address, status);
  check_string(x.name, limits::max_name_size, "member name");
  check_string(x.address, limits::max_address_size, "member address");
  if (status > static_cast<uint8_t>(member_status::removed))
    throw wire_error("invalid member status " + std::to_string(status));
  x.status = static_cast<member_status>(status);
  return x;
}

void write(wire_writer& out, const gossip_state& x) {
  out(x.cluster);
  out(static_cast<uint64_t>(x.members.size()));
  for (auto& m : x.members)
    write(out, m);
  out(static_cast<uint64_t>(x.rows.size()));
  for (auto& row : x.rows) {
    write(out, row.observer);
    out(row.version, static_cast<uint64_t>(row.unreachable.size()));
    for (auto& subject : row.unreachable)
      write(out, subject);
  }
}

gossip_state read_gossip(wire_reader& in) {
  gossip_state x;
  in(x.cluster);
  check_string(x.cluster, limits::max_name_size, "cluster name");
  auto n = read_count(in, limits::max_members, "members");
  x.members.reserve(n);
  for (uint64_t i = 0; i < n; ++i)
    x.members.push_back(read_member(in));
  n = read_count(in, limits::max_members, "reachability rows");
  x.rows.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    observation_row row;
    row.observer = read_node(in);
    in(row.version);
    auto k = read_count(in, limits::max_members, "unreachable members");
    row.unreachable.reserve(k);
    for (uint64_t j = 0; j < k; ++j)
      row.unreachable.push_back(read_node(in));
    x.rows.push_back(std::move(row));
  }
  return x;
}

void write(wire_writer& out, const join_request& x) {
  out(x.cluster);
  write(out, x.joiner);
}

join_request read_join_request(wire_reader& in) {
  join_request x;
  in(x.cluster);
  check_string(x.cluster, limits::max_name_size, "cluster name");
  x.joiner = read_member(in);
  return x;
}

void write(wire_writer& out, const join_reply& x) {
  out(x.welcome, x.final, x.reason);
  if (x.welcome)
    write(out, x.state);
}

join_reply read_join_reply(wire_reader& in) {
  join_reply x;
  in(x.welcome, x.final, x.reason);
  check_string(x.reason, limits::max_reason_size, "refusal reason");
  if (x.welcome)
    x.state = read_gossip(in);
  return x;
}

} // namespace relay::cluster_detail
