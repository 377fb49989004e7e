#include "bridge/app.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "log/log.h"

namespace callbridge::bridge {

http::ClientOptions client_options(const rules::Config& config) {
  // Unset: one kept-alive connection per worker, so that busy workers do not open and close a
  // connection per request.
  std::size_t idle = config.http.max_idle_per_origin;
  if (idle == 0) idle = static_cast<std::size_t>(std::max(config.dispatcher.workers, 1));
  return {config.http.verify_tls, config.http.ca_file, config.http.max_response_bytes, idle};
}

rules::Registry with_bridge_sections(const rules::Registry& connectors) {
  rules::Registry registry = connectors;
  registry.add_section("console", load_console_section);
  return registry;
}

std::string default_node_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    std::snprintf(host, sizeof host, "node");
  std::random_device random;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(random() & 0xffffff));
  return std::string(host) + "-" + std::to_string(getpid()) + "-" + suffix;
}

JournalOptions journal_options(const rules::Config& config) {
  JournalOptions options;
  options.path = config.storage.path;
  options.fsync_each_commit = config.storage.fsync;
  options.max_batch = config.storage.max_batch;
  if (!config.storage.postgres.empty()) {
    options.backend = JournalBackend::postgres;
    options.postgres = config.storage.postgres;
  }
  options.event_scoped = JournalStore::event_scoped_keys();
  return options;
}

std::unique_ptr<App> App::create(rules::Config config, const rules::Registry& registry,
                                 AppOptions options, std::string& error) {
  auto journal = Journal::open(journal_options(config), error);
  if (!journal) return nullptr;
  std::unique_ptr<App> app(
      new App(std::move(config), registry, std::move(journal), std::move(options)));
  app->build();
  return app;
}

App::App(rules::Config config, const rules::Registry& registry, std::unique_ptr<Journal> journal,
         AppOptions options)
    : registry_(registry),
      options_(std::move(options)),
      holder_(std::make_shared<rules::Config>(std::move(config))),
      journal_(std::move(journal)),
      client_(client_options(*holder_.get())) {}

void App::build() {
  auto config = holder_.get();
  // The owner of every lease this process takes: calls, chains, singletons.
  const std::string owner =
      config->cluster.node_id.empty() ? default_node_id() : config->cluster.node_id;
  dispatcher_ = std::make_unique<Dispatcher>(*journal_, holder_, client_, metrics_);
  // On PostgreSQL every node is a cluster node (one alone too): calls are run under leases.
  if (!config->storage.postgres.empty()) {
    ClusterMode cluster;
    cluster.owner = owner;
    cluster.lease = std::chrono::seconds(config->cluster.lease_seconds);
    dispatcher_->set_cluster(std::move(cluster));
  }
  metrics_.queue_depth = [this] { return dispatcher_->depth(); };
  metrics_.journal_commits = [this] { return journal_->commits(); };
  metrics_.journal_failed_queued_writes = [this] { return journal_->failed_later_writes(); };
  metrics_.journal_last_commit_seconds = [this] {
    return static_cast<double>(journal_->last_commit_time().count()) / 1e6;
  };
  intake_ = std::make_unique<Intake>(*journal_, *dispatcher_, metrics_, holder_);
  store_ = std::make_unique<JournalStore>(*journal_);
  leases_ = std::make_unique<JournalLeases>(*journal_, owner,
                                            std::chrono::seconds(config->cluster.lease_seconds));
  prune_runner_ = std::make_unique<rules::SingletonRunner>(
      *leases_, kPruneLease, kPruneInterval, [this](const rules::LeaseFence&) {
        std::size_t pruned = prune();
        log::write(log::Level::info, "pruned old calls",
                   {{"calls", std::to_string(pruned)}, {"node", leases_->owner()}});
      });
  rules::Host host{*store_,      *intake_,
                   client_,      routes_,
                   services_,    {config->server.max_json_depth, config->server.max_expanded_bytes},
                   leases_.get()};
  for (const auto& factory : registry_.services())
    if (auto service = factory.make(*config, host)) services_.add(factory.name, std::move(service));
  dispatcher_->set_services(&services_);
  // The web console (docs/console.md): its routes authenticate by themselves.
  std::function<void()> reload = options_.request_reload;
  if (!reload && !options_.config_path.empty())
    reload = [this] { reload_file(options_.config_path); };
  console_ = std::make_shared<Console>(
      ConsoleContext{holder_, *journal_, client_, &services_, options_.config_path, &registry_,
                     [this] { return dispatcher_->depth(); }, std::move(reload)});
  console_->add_routes(routes_);
  server_ = std::make_unique<BridgeServer>(holder_, *journal_, *dispatcher_, metrics_, *intake_,
                                           routes_, &services_);
}

App::~App() {
  if (http_thread_.joinable()) stop();
}

bool App::start(std::string& error) {
  auto config = holder_.get();
  // Cluster mode needs no recovery pass: the dispatcher's poller claims what is pending.
  if (options_.recover && !dispatcher_->clustered()) recovered_ = dispatcher_->recover();
  if (dispatcher_->clustered())
    log::write(log::Level::info, "cluster node",
               {{"node_id", dispatcher_->cluster().owner},
                {"lease_seconds", std::to_string(config->cluster.lease_seconds)}});
  dispatcher_->start(config->dispatcher.workers,
                     static_cast<std::size_t>(config->dispatcher.queue_capacity));
  for (const auto& [name, service] : services_.all()) service->start();
  services_started_ = true;
  if (!server_->bind(options_.listen.empty() ? config->server.listen : options_.listen, error)) {
    stop_services();
    dispatcher_->stop(std::chrono::milliseconds(0));
    return false;
  }
  prune_runner_->start();
  http_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "cb-accept");
    server_->run();
  });
  return true;
}

void App::stop_services() {
  if (!services_started_) return;
  services_started_ = false;
  prune_runner_->stop();
  for (const auto& [name, service] : services_.all()) service->stop();
}

bool App::stop() {
  if (http_thread_.joinable()) {
    server_->stop();
    http_thread_.join();
  }
  stop_services();
  return dispatcher_->stop(holder_.get()->dispatcher.shutdown_grace);
}

std::size_t App::reload(rules::Config fresh) {
  auto current = holder_.get();
  if (fresh.server.listen != current->server.listen ||
      fresh.storage.path != current->storage.path ||
      fresh.storage.postgres != current->storage.postgres)
    log::write(log::Level::warn, "server and storage changes take effect on restart");
  auto next = std::make_shared<rules::Config>(std::move(fresh));
  next->server = current->server;  // listen, tokens and pool are bound at start
  next->storage = current->storage;
  next->cluster = current->cluster;  // the node's name and its leases are fixed at start
  std::size_t count = next->rules->all().size();
  holder_.set(std::move(next));
  return count;
}

bool App::reload_file(const std::string& path) {
  rules::LoadResult result = rules::load_config_file(path, rules::process_env, registry_);
  if (!result.config) {
    for (const auto& d : result.errors)
      log::write(log::Level::error, "reload rejected", {{"error", d.format()}});
    log::write(log::Level::warn, "keeping the rules in force");
    return false;
  }
  std::size_t count = reload(std::move(*result.config));
  log::write(log::Level::info, "rules reloaded", {{"rules", std::to_string(count)}});
  return true;
}

void App::reload_tls() {
  if (!server_->tls()) return;
  // Renewed certificates apply to new connections, whatever the rules' fate.
  std::string error;
  if (server_->reload_tls(error))
    log::write(log::Level::info, "TLS certificate reloaded");
  else
    log::write(log::Level::error, "TLS certificate reload rejected; keeping the old one",
               {{"error", error}});
}

std::size_t App::prune() {
  auto days = holder_.get()->storage.retention_days;
  return journal_->prune(std::chrono::system_clock::now() - std::chrono::hours(24 * days));
}

}  // namespace callbridge::bridge
