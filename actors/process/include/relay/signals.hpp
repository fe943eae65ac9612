#pragma once

// Signals for a node's process, handled in one place: a signalfd read by a
// thread of its own, never work in a signal handler.

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/timespan.hpp>

#include "relay/node_module.hpp"

namespace relay {

/// What a SIGHUP subscriber receives.
using sighup_atom = caf::atom_constant<caf::atom("sighup")>;

/// Turns SIGTERM, SIGINT and SIGHUP into events:
///
/// - the first SIGTERM or SIGINT asks for a graceful shutdown:
///   wait_for_shutdown() returns the signal, and the program stops its
///   supervisors (children in reverse order) and returns from main, which
///   closes the node (queues flushed, socket files removed);
/// - a second SIGTERM or SIGINT ends the process at once (exit status 128 +
///   the signal), for a shutdown that hangs;
/// - SIGHUP sends `(sighup_atom)` to every subscriber (e.g. to reload a
///   configuration).
///
/// Add it first: `cfg.add_module<relay::signal_module>()`. configure()
/// blocks the three signals in the calling thread, so every thread the node
/// starts afterwards inherits the mask and the signalfd sees them all.
/// Thread rules: all member functions are thread-safe.
class signal_module : public node_module {
public:
  signal_module();
  ~signal_module() override;

  std::string name() const override;

  /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread.
  void configure(node_config& cfg) override;

  /// Starts reading the signalfd. Throws std::system_error if the signalfd
  /// or the thread cannot be made.
  void start(node& n) override;

  /// Stops the reading thread.
  void stop(node& n) override;

  /// Waits for the first SIGTERM or SIGINT (or request_shutdown), at most
  /// `timeout` if given. Returns the signal (SIGTERM, SIGINT; 0 for
  /// request_shutdown), or nullopt on timeout.
  std::optional<int> wait_for_shutdown(std::optional<caf::timespan> timeout = {});

  /// Acts as a first SIGTERM would, without a signal (tests, admin calls).
  void request_shutdown();

  /// `who` receives `(sighup_atom)` on every SIGHUP until unsubscribe.
  void subscribe_hangup(const caf::actor& who);
  void unsubscribe_hangup(const caf::actor& who);

  /// SIGHUPs received so far.
  uint64_t hangups() const;

private:
  void run();

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<int> shutdown_signal_;
  std::vector<caf::actor> hangup_subscribers_;
  uint64_t hangups_ = 0;
  int signal_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

} // namespace relay
