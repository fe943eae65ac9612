#include "relay/named_actor.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "relay/error.hpp"
#include "relay/log.hpp"
#include "relay/node.hpp"

namespace relay {

namespace {

struct named_state {
  static inline const char* name = "relay.named_actor";
  caf::actor holder;
};

caf::behavior named_impl(caf::stateful_actor<named_state>* self, node* n,
                         std::string name, std::string uri) {
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source == self->state.holder.address())
      self->state.holder = nullptr; // resolve again on the next message
  });
  self->set_default_handler(
    [self, n, name, uri](caf::scheduled_actor*,
                         caf::message_view& xs) -> caf::result<caf::message> {
      auto& st = self->state;
      if (!st.holder) {
        if (uri.empty()) {
          st.holder = n->whereis(name);
        } else if (auto found = n->lookup(uri, name)) {
          st.holder = std::move(*found);
        }
        if (st.holder)
          self->monitor(st.holder);
      }
      if (!st.holder) {
        auto err = make_error(errc::name_not_found,
                              "nobody holds the name '" + name + "'"
                                + (uri.empty() ? "" : " at " + uri));
        if (!self->current_message_id().is_request())
          log(log_level::warning, "dropped a message: " + describe(err));
        return err;
      }
      self->delegate(st.holder, xs.move_content_to_message());
      return caf::delegated<caf::message>{};
    });
  return {[](caf::unit_t) {}};
}

} // namespace

caf::actor named_actor(node& n, std::string name, std::string uri) {
  if (uri.empty())
    return n.system().spawn(named_impl, &n, std::move(name), std::move(uri));
  return n.system().spawn<caf::detached>(named_impl, &n, std::move(name),
                                         std::move(uri));
}

} // namespace relay
