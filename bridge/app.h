// The composition root: one running bridge built from a loaded configuration and the connectors'
// registry. It owns the journal, the dispatcher, the intake, the connectors' services and the
// HTTP server, wires them together once, and starts and stops them in order. `serve` runs one;
// tests build one on a temporary journal.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bridge/console_routes.h"
#include "bridge/dispatcher.h"
#include "bridge/intake.h"
#include "bridge/journal/journal.h"
#include "bridge/metrics.h"
#include "bridge/server.h"
#include "http/http_client.h"
#include "rules/config.h"
#include "rules/host.h"
#include "rules/registry.h"

namespace callbridge::bridge {

// How often `serve` prunes the calls older than storage.retention_days.
constexpr std::chrono::hours kPruneInterval{1};

// The outbound HTTP client's options from the configuration's `http` section.
http::ClientOptions client_options(const rules::Config& config);
// A lease owner name for this process: "<hostname>-<pid>-<random>" (cluster.node_id's default).
std::string default_node_id();
// The journal's options from the configuration's `storage` section.
JournalOptions journal_options(const rules::Config& config);

// The connectors' registry with the bridge's own sections added (`console:`, the web console's
// users): what a configuration file is loaded with.
rules::Registry with_bridge_sections(const rules::Registry& connectors);

struct AppOptions {
  // Where the server listens; empty: the configuration's server.listen.
  std::string listen;
  // Queue the journal's pending events (after a crash or a stop) before starting.
  bool recover = true;
  // The file the web console validates and reloads; empty: embedded defaults (reload refused).
  std::string config_path;
  // How the console asks for a reload (serve: SIGHUP to itself); null: reload_file(config_path).
  std::function<void()> request_reload;
};

class App {
 public:
  // Opens the journal and builds every part; null with `error` when the journal cannot open.
  // `registry` (the connectors' sections, actions and services) must outlive the App.
  static std::unique_ptr<App> create(rules::Config config, const rules::Registry& registry,
                                     AppOptions options, std::string& error);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Recovers pending events, starts the dispatcher and the services, binds and serves on a
  // thread of its own. False with `error` (everything started is stopped again).
  bool start(std::string& error);
  // Stops the server, the services, then the dispatcher within dispatcher.shutdown_grace.
  // False when actions were still running at the end of the grace period.
  bool stop();

  // Puts the rules of `fresh` in force; server and storage settings stay as started.
  // Returns the number of rules now in force.
  std::size_t reload(rules::Config fresh);
  // Loads `path` with the registry and puts its rules in force; a file with errors keeps the
  // rules in force. Logs the outcome either way; true when the new rules are in force.
  bool reload_file(const std::string& path);
  // Reads server.tls's certificate and key again for new connections (no TLS: nothing to do);
  // a pair that cannot be read keeps the old one. Logs the outcome.
  void reload_tls();
  // Prunes the calls older than storage.retention_days; returns how many went.
  std::size_t prune();

  std::size_t recovered() const { return recovered_; }
  std::shared_ptr<const rules::Config> config() const { return holder_.get(); }
  Journal& journal() { return *journal_; }
  Dispatcher& dispatcher() { return *dispatcher_; }
  Intake& intake() { return *intake_; }
  JournalStore& store() { return *store_; }
  Metrics& metrics() { return metrics_; }
  BridgeServer& server() { return *server_; }
  const rules::Services& services() const { return services_; }

 private:
  App(rules::Config config, const rules::Registry& registry, std::unique_ptr<Journal> journal,
      AppOptions options);
  void build();
  void stop_services();

  const rules::Registry& registry_;
  AppOptions options_;
  ConfigHolder holder_;
  std::unique_ptr<Journal> journal_;
  http::HttpClient client_;
  Metrics metrics_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<Intake> intake_;
  std::unique_ptr<JournalStore> store_;
  std::vector<rules::Route> routes_;
  rules::Services services_;
  std::shared_ptr<Console> console_;
  std::unique_ptr<BridgeServer> server_;
  std::thread http_thread_;
  std::size_t recovered_ = 0;
  bool services_started_ = false;
};

}  // namespace callbridge::bridge
