// Name lookups (frame kinds lookup and lookup_reply): a request id and a
// name out; the published actor's id and interface, or "not found", back.

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "node_impl.hpp"
#include "peer.hpp"
#include "protocols.hpp"
#include "relay/error.hpp"
#include "wire.hpp"

namespace relay {

namespace {

void handle_lookup(peer& p, wire_reader& in) {
  uint64_t request_id = 0;
  std::string name;
  in(request_id, name);
  auto buf = begin_frame();
  wire_writer out{buf, &p};
  out(request_id);
  if (auto found = p.node().names().find(name)) {
    out(static_cast<uint8_t>(wire::lookup_status::found));
    p.write_actor(out, found->handle.get());
    out(found->interface);
  } else {
    out(static_cast<uint8_t>(wire::lookup_status::not_found));
  }
  finish_frame(buf, frame_kind::lookup_reply);
  p.send_frame(std::move(buf));
}

void handle_lookup_reply(peer& p, wire_reader& in) {
  uint64_t request_id = 0;
  uint8_t status = 0;
  in(request_id, status);
  if (status == static_cast<uint8_t>(wire::lookup_status::not_found)) {
    p.node().lookups().complete(
      request_id, p.remote_id(),
      make_error(errc::name_not_found,
                             "no actor is published under that name on "
                               + p.display_name()));
    return;
  }
  if (status != static_cast<uint8_t>(wire::lookup_status::found))
    throw wire_error("invalid lookup status " + std::to_string(status));
  uint8_t tag = 0;
  uint64_t aid = 0;
  in(tag, aid);
  if (tag != static_cast<uint8_t>(wire::ref_tag::sender_node))
    throw wire_error("lookup reply names an actor of another node");
  lookup_result result;
  result.aid = aid;
  in(result.interface);
  p.node().lookups().complete(request_id, p.remote_id(), std::move(result));
}

} // namespace

caf::error peer::send_lookup(uint64_t request_id, const std::string& name) {
  auto buf = begin_frame(16 + name.size());
  wire_writer out{buf};
  out(request_id, name);
  finish_frame(buf, frame_kind::lookup);
  return send_frame(std::move(buf));
}

caf::error add_lookup_protocol(frame_table& table) {
  if (auto err = table.add(static_cast<uint8_t>(frame_kind::lookup), "lookup",
                           [](peer_context& p, wire_reader& in) {
                             handle_lookup(static_cast<peer&>(p), in);
                           }))
    return err;
  return table.add(static_cast<uint8_t>(frame_kind::lookup_reply),
                   "lookup_reply", [](peer_context& p, wire_reader& in) {
                     handle_lookup_reply(static_cast<peer&>(p), in);
                   });
}

} // namespace relay
