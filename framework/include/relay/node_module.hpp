#pragma once

#include <string>

namespace relay {

class node;
class node_config;

/// A library that starts and stops with a node: remote spawn, cluster
/// membership, tooling endpoints. Added to a node's configuration with
/// node_config::add_module; the node owns it from then on.
///
/// Lifecycle: configure (when added) -> start (node constructor, after the
/// transports exist, before any connection) -> stop (node destructor, before
/// connections close). Modules start in the order they were added and stop
/// in reverse order.
class node_module {
public:
  virtual ~node_module();

  /// A short name for logs and errors, e.g. "cluster".
  virtual std::string name() const = 0;

  /// Declares the module's options (node_config::module_options) so that
  /// they parse from the command line and config files like CAF's own.
  /// Called once by node_config::add_module, on the thread that configures,
  /// before the configuration is parsed. The default does nothing.
  virtual void configure(node_config& cfg);

  /// Starts the module: reads its options, registers frame handlers
  /// (node::add_frame_handler) and listeners, spawns its actors. Called once
  /// by the node's constructor, on that thread, before any connection
  /// exists. Throwing aborts the node's construction; modules that started
  /// before are stopped in reverse order and the exception propagates.
  virtual void start(node& n) = 0;

  /// Stops the module: its actors end, its listeners are removed. Called
  /// once by the node's destructor, on that thread, while connections are
  /// still open (a module can say goodbye to peers). Must not throw.
  virtual void stop(node& n) = 0;
};

} // namespace relay
