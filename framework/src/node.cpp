// relay::node: the public face; everything happens in node_impl.

#include "relay/node.hpp"

#include "node_impl.hpp"
#include "peer.hpp"

#include <caf/scoped_actor.hpp>

namespace relay {

node::node(node_config& cfg) : impl_(std::make_unique<node_impl>(cfg)) {
  impl_->start_modules(*this);
  // Last: a scrape asks the modules' introspection sources too.
  try {
    impl_->start_metrics();
  } catch (...) {
    impl_->stop_modules(*this);
    throw;
  }
}

node::~node() {
  impl_->stop_metrics();
  impl_->stop_modules(*this);
}

std::string node::metrics_address() const {
  return impl_->metrics_address();
}

caf::actor_system& node::system() noexcept {
  return impl_->system();
}

const caf::node_id& node::id() const noexcept {
  return impl_->system().node();
}

const std::string& node::name() const noexcept {
  return impl_->name();
}

caf::expected<std::string> node::listen(const std::string& uri,
                                        trust_level trust) {
  return impl_->listen(uri, trust);
}

bool node::unpublish(const std::string& name) {
  return impl_->names().unpublish(name);
}

caf::actor node::whereis(const std::string& name) const {
  if (auto found = impl_->names().find(name))
    return caf::actor_cast<caf::actor>(found->handle);
  return nullptr;
}

caf::actor node::spawn_actor() const {
  return impl_->spawn_client();
}

caf::expected<caf::strong_actor_ptr>
node::spawn_on_impl(caf::message target, const std::string& type,
                    const std::set<std::string>& interface, caf::message args) {
  caf::scoped_actor self{impl_->system()};
  std::vector<std::string> ifs(interface.begin(), interface.end());
  caf::expected<caf::strong_actor_ptr> result{
    caf::make_error(caf::sec::request_receiver_down)};
  auto request = caf::make_message(spawn_atom::value) + target
                 + caf::make_message(type, std::move(ifs), std::move(args));
  self->request(impl_->spawn_client(), caf::infinite, std::move(request))
    .receive(
      [&](caf::actor& hdl) {
        result = caf::actor_cast<caf::strong_actor_ptr>(std::move(hdl));
      },
      [&](caf::error& err) { result = std::move(err); });
  return result;
}

caf::expected<caf::strong_actor_ptr>
node::lookup_impl(const caf::node_id& id, const std::string& name,
                  std::vector<std::string> interface) {
  return impl_->lookup(id, name, interface);
}

caf::actor node::lookup_actor() const {
  return impl_->lookup_actor();
}

caf::expected<caf::node_id> node::connect(const std::string& uri) {
  auto p = impl_->connect(uri);
  if (!p)
    return std::move(p.error());
  return (*p)->remote_id();
}

node_stats node::stats() const {
  return impl_->stats();
}

bool node::disconnect(const caf::node_id& peer_id) {
  return impl_->disconnect(peer_id, make_error(errc::connection_closed,
                                               "disconnected by this node"));
}

bool node::disconnect(const caf::node_id& peer_id, caf::error reason) {
  return impl_->disconnect(peer_id, std::move(reason));
}

void node::add_introspection_source(std::string topic,
                                    const caf::actor& source) {
  impl_->introspection().add(topic, source);
}

void node::monitor_nodes(const caf::actor& observer) {
  impl_->events().monitor_nodes(observer);
}

bool node::demonitor_nodes(const caf::actor& observer) {
  return impl_->events().demonitor_nodes(observer);
}

void node::monitor_node(const caf::actor& observer, const caf::node_id& id) {
  impl_->monitor_node(observer, id);
}

std::vector<peer_info> node::peers() const {
  return impl_->peers();
}

void node::add_listener(std::shared_ptr<node_listener> listener) {
  impl_->events().add_listener(std::move(listener));
}

bool node::remove_listener(const std::shared_ptr<node_listener>& listener) {
  return impl_->events().remove_listener(listener);
}

caf::error node::add_frame_handler(uint8_t kind, std::string name,
                                   frame_handler handler) {
  return impl_->add_frame_handler(kind, std::move(name), std::move(handler));
}

caf::error node::send_frame(const caf::node_id& id, frame_buffer frame) {
  return impl_->send_frame(id, std::move(frame));
}

const message_registry& node::messages() const noexcept {
  return impl_->messages();
}

caf::error node::publish_impl(caf::strong_actor_ptr handle, std::string name,
                              std::vector<std::string> interface) {
  auto ptr = handle;
  if (auto err = impl_->names().publish(std::move(handle), std::move(name),
                                        std::move(interface)))
    return err;
  // Counted for the metrics from now on (relay_mailbox_remote_messages).
  impl_->track_published(std::move(ptr));
  return caf::none;
}

caf::expected<caf::strong_actor_ptr>
node::lookup_impl(const std::string& uri, const std::string& name,
                  std::vector<std::string> interface) {
  return impl_->lookup(uri, name, interface);
}

} // namespace relay
