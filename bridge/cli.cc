#include "bridge/cli.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <tuple>

#include "bridge/action_record.h"
#include "bridge/command_format.h"
#include "bridge/completion.h"
#include "bridge/connectors.h"
#include "bridge/dispatcher.h"
#include "bridge/event_input.h"
#include "bridge/history.h"
#include "bridge/intake.h"
#include "bridge/journal/journal.h"
#include "bridge/journal/postgres/connection.h"
#include "bridge/journal/postgres/migrate.h"
#include "bridge/journal/sqlite/sqlite_journal.h"
#include "bridge/log.h"
#include "bridge/server.h"
#include "bridge/systemd.h"
#include "bridge/version.h"
#include "rules/action.h"
#include "rules/config.h"
#include "rules/config_schema.h"
#include "rules/engine.h"

namespace callbridge {

namespace {

constexpr int kOk = 0, kRuntimeFailure = 1, kBadConfig = 2;

// `checking`: a file being checked (validate, simulate) rather than run; its warnings and notes
// are shown, and an unset ${NAME} is a warning unless `strict_env`.
std::optional<rules::Config> load_or_report(const std::string& path, std::ostream& err,
                                            bool checking = false, bool strict_env = true) {
  rules::LoadResult result =
      rules::load_config_file(path, rules::process_env, bridge::connector_registry(),
                              strict_env ? rules::UnsetEnv::error : rules::UnsetEnv::warning);
  std::vector<rules::Diagnostic> shown = result.errors;
  if (checking) shown.insert(shown.end(), result.notes.begin(), result.notes.end());
  std::stable_sort(shown.begin(), shown.end(), [](const auto& a, const auto& b) {
    return std::tie(a.location.line, a.location.column) <
           std::tie(b.location.line, b.location.column);
  });
  for (const auto& d : shown) err << d.format() << "\n";
  return std::move(result.config);
}

int validate(const std::string& path, bool strict_env) {
  auto config = load_or_report(path, std::cerr, true, strict_env);
  if (!config) return kBadConfig;
  std::map<std::string, int> per_event;
  for (const auto& rule : config->rules->all()) ++per_event[rule.event];
  std::cout << path << ": ok, " << config->rules->all().size() << " rules";
  std::string sep = " (";
  for (const auto& [event, count] : per_event) {
    std::cout << sep << event << " " << count;
    sep = ", ";
  }
  std::cout << (per_event.empty() ? "" : ")") << "\n";
  return kOk;
}

// Reads one event object, an array of events, or {"events": [...]}.
std::optional<std::vector<rules::EventInput>> read_events(const std::string& path,
                                                          std::ostream& err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err << path << ": error: cannot read event file\n";
    return std::nullopt;
  }
  nlohmann::json json = nlohmann::json::parse(in, nullptr, false);
  if (json.is_discarded()) {
    err << path << ": error: not valid JSON\n";
    return std::nullopt;
  }
  if (json.is_object() && json.contains("events")) json = json["events"];
  if (!json.is_array()) json = nlohmann::json::array({json});
  std::vector<rules::EventInput> events;
  for (std::size_t i = 0; i < json.size(); ++i) {
    std::string error;
    auto event = event_from_json(json[i], error);
    if (!event) {
      err << path << ": error: event " << i + 1 << ": " << error << "\n";
      return std::nullopt;
    }
    events.push_back(std::move(*event));
  }
  return events;
}

std::string indent(const std::string& text, const std::string& prefix) {
  std::string out = prefix;
  for (char c : text) {
    out += c;
    if (c == '\n') out += prefix;
  }
  return out;
}

int simulate(const std::string& path, const std::vector<std::string>& event_files, bool send,
             CommandFormat format) {
  auto config = load_or_report(path, std::cerr, true);
  if (!config) return kBadConfig;
  std::vector<rules::EventInput> events;
  for (const auto& file : event_files) {
    auto more = read_events(file, std::cerr);
    if (!more) return kBadConfig;
    events.insert(events.end(), more->begin(), more->end());
  }
  http::HttpClient client(
      {config->http.verify_tls, config->http.ca_file, config->http.max_response_bytes, 8});
  rules::Engine engine(config->rules, config->secrets, send ? &client : nullptr);
  std::map<std::string, rules::CallContext> calls;
  bool failed = false;
  for (const auto& event : events) {
    rules::CallContext& call = calls[event.call_id];
    std::cout << "== event " << event.event << ", call " << event.call_id << "\n";
    auto outcomes = engine.run(event, call);
    if (outcomes.empty()) std::cout << "   (no rules for this event)\n";
    for (const auto& o : outcomes) {
      std::cout << "-- rule " << o.rule << ": "
                << (o.status == rules::RuleStatus::skipped && !o.request ? "skipped, " : "runs, ")
                << o.gate << "\n";
      for (const auto& rule : config->rules->all())
        if (rule.name == o.rule && rule.action)
          std::cout << "   " << rule.action_key << ": " << rule.action->describe() << "\n";
      bool http = o.request && (o.request->url.rfind("http://", 0) == 0 ||
                                o.request->url.rfind("https://", 0) == 0);
      if (o.request && o.request->url.rfind("response://", 0) == 0)
        std::cout << "   local response (no request is sent)\n";
      else if (http)
        std::cout << indent(render_command(*o.request, format), "   ") << "\n";
      if (!o.undefined.empty()) {
        std::cout << "   warning: undefined variables rendered empty:";
        for (const auto& name : o.undefined) std::cout << " {" << name << "}";
        std::cout << "\n";
      }
      if (o.response) {
        const auto& r = *o.response;
        double ms = static_cast<double>(r.latency.count()) / 1000.0;
        std::ostringstream line;
        line.setf(std::ios::fixed);
        line.precision(1);
        if (r.kind == http::OutcomeKind::response) {
          line << "   -> " << r.status << " in " << ms
               << " ms: " << config->secrets->redact(r.body.substr(0, 300))
               << (r.body.size() > 300 ? "..." : "");
        } else {
          line << "   -> " << o.error << " after " << ms << " ms";
        }
        std::cout << line.str() << "\n";
      } else if (o.request && !o.sent && o.error.empty()) {
        std::cout << "   -> not sent (dry run; add --send to perform)\n";
      }
      if (!o.error.empty() && o.status != rules::RuleStatus::http_error &&
          (!o.response || o.response->kind == http::OutcomeKind::response))
        std::cout << "   error: " << o.error << "\n";
      for (const auto& [name, value] : o.extracted)
        std::cout << "   extracted " << name << "=" << config->secrets->redact(value) << "\n";
      if (o.status == rules::RuleStatus::failed || o.status == rules::RuleStatus::http_error)
        failed = true;
    }
  }
  for (const auto& [id, call] : calls) {
    std::cout << "== variables of call " << id << "\n";
    for (const auto& [name, value] : call.vars)
      std::cout << "   " << name << "=" << config->secrets->redact(value) << "\n";
  }
  return failed ? kRuntimeFailure : kOk;
}

http::ClientOptions client_options(const rules::Config& config) {
  return {config.http.verify_tls, config.http.ca_file, config.http.max_response_bytes, 8};
}

// The journal as messages name it: its file, or its PostgreSQL URL without the password.
std::string journal_name(const rules::Config& config) {
  if (config.storage.postgres.empty()) return config.storage.path;
  return bridge::pg::redact_conninfo(config.storage.postgres);
}

std::unique_ptr<bridge::Journal> open_journal(const rules::Config& config) {
  std::string error;
  bridge::JournalOptions options(config.storage.path, config.storage.fsync, 512);
  if (!config.storage.postgres.empty()) {
    options.backend = bridge::JournalBackend::postgres;
    options.postgres = config.storage.postgres;
  }
  options.event_scoped = bridge::JournalStore::event_scoped_keys();
  auto journal = bridge::Journal::open(options, error);
  if (!journal)
    std::cerr << journal_name(config)
              << ": error: cannot open journal: " << config.secrets->redact(error) << "\n";
  return journal;
}

// Reloads on SIGHUP (an invalid file keeps the rules in force), stops on SIGTERM/SIGINT, and
// prunes old calls once an hour.
void supervise(const std::string& path, bool have_file, bridge::ConfigHolder& holder,
               bridge::Journal& journal, bridge::BridgeServer& server, const sigset_t& signals) {
  auto last_prune = std::chrono::steady_clock::time_point{};
  while (true) {
    if (std::chrono::steady_clock::now() - last_prune > std::chrono::hours(1)) {
      last_prune = std::chrono::steady_clock::now();
      auto days = holder.get()->storage.retention_days;
      std::size_t pruned =
          journal.prune(std::chrono::system_clock::now() - std::chrono::hours(24 * days));
      if (pruned > 0)
        bridge::log(bridge::LogLevel::info, "pruned old calls",
                    {{"calls", std::to_string(pruned)}});
    }
    timespec timeout{1, 0};
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT) {
      bridge::log(bridge::LogLevel::info, "shutting down",
                  {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      return;
    }
    if (sig != SIGHUP) continue;
    if (server.tls()) {
      // Renewed certificates apply to new connections, whatever the rules' fate.
      std::string error;
      if (server.reload_tls(error))
        bridge::log(bridge::LogLevel::info, "TLS certificate reloaded");
      else
        bridge::log(bridge::LogLevel::error, "TLS certificate reload rejected; keeping the old one",
                    {{"error", error}});
    }
    if (!have_file) {
      bridge::log(bridge::LogLevel::warn, "SIGHUP ignored: running on embedded defaults");
      continue;
    }
    rules::LoadResult result =
        rules::load_config_file(path, rules::process_env, bridge::connector_registry());
    if (!result.config) {
      for (const auto& d : result.errors)
        bridge::log(bridge::LogLevel::error, "reload rejected", {{"error", d.format()}});
      bridge::log(bridge::LogLevel::warn, "keeping the rules in force");
      continue;
    }
    auto current = holder.get();
    if (result.config->server.listen != current->server.listen ||
        result.config->storage.path != current->storage.path ||
        result.config->storage.postgres != current->storage.postgres)
      bridge::log(bridge::LogLevel::warn, "server and storage changes take effect on restart");
    auto fresh = std::make_shared<rules::Config>(std::move(*result.config));
    fresh->server = current->server;  // listen, tokens and pool are bound at start
    fresh->storage = current->storage;
    std::size_t count = fresh->rules->all().size();
    holder.set(std::move(fresh));
    bridge::log(bridge::LogLevel::info, "rules reloaded", {{"rules", std::to_string(count)}});
  }
}

int serve(const std::string& path, bool path_given) {
  bool have_file = path_given || std::filesystem::exists(path);
  rules::Config config;
  if (have_file) {
    auto loaded = load_or_report(path, std::cerr);
    if (!loaded) return kBadConfig;
    config = std::move(*loaded);
  } else {
    bridge::log(bridge::LogLevel::info, "no configuration file: running on embedded defaults",
                {{"looked_for", path}});
  }
  // Signals go to the supervisor only; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto journal = open_journal(config);
  if (!journal) return kRuntimeFailure;
  bridge::ConfigHolder holder(std::make_shared<rules::Config>(config));
  http::HttpClient client(client_options(config));
  bridge::Metrics metrics;
  bridge::Dispatcher dispatcher(*journal, holder, client, metrics);
  metrics.queue_depth = [&] { return dispatcher.depth(); };
  metrics.journal_commits = [&] { return journal->commits(); };
  metrics.journal_failed_queued_writes = [&] { return journal->failed_later_writes(); };
  metrics.journal_last_commit_seconds = [&] {
    return static_cast<double>(journal->last_commit_time().count()) / 1e6;
  };
  bridge::Intake intake(*journal, dispatcher, metrics, holder);
  bridge::JournalStore store(*journal);
  std::vector<rules::Route> routes;
  rules::Services services;
  rules::Host host{store,    intake,
                   client,   routes,
                   services, {config.server.max_json_depth, config.server.max_expanded_bytes}};
  for (const auto& factory : bridge::connector_registry().services())
    if (auto service = factory.make(config, host)) services.add(factory.name, std::move(service));
  dispatcher.set_services(&services);
  std::size_t recovered = dispatcher.recover();
  dispatcher.start(config.dispatcher.workers,
                   static_cast<std::size_t>(config.dispatcher.queue_capacity));
  for (const auto& [name, service] : services.all()) service->start();

  bridge::BridgeServer server(holder, *journal, dispatcher, metrics, intake, routes, &services);
  std::string error;
  if (!server.bind(config.server.listen, error)) {
    bridge::log(bridge::LogLevel::error, "cannot start", {{"error", error}});
    for (const auto& [name, service] : services.all()) service->stop();
    dispatcher.stop(std::chrono::milliseconds(0));
    return kRuntimeFailure;
  }
  std::thread http_thread([&] { server.run(); });
  bridge::log(bridge::LogLevel::info, "listening",
              {{"listen", config.server.listen},
               {"scheme", server.tls() ? "https" : "http"},
               {"port", std::to_string(server.port())},
               {"journal", journal_name(config)},
               {"rules", std::to_string(config.rules->all().size())},
               {"recovered_events", std::to_string(recovered)}});
  // The journal is open and the listening socket bound: connections are accepted from now on.
  bridge::notify_service_manager("READY=1\nSTATUS=listening on port " +
                                 std::to_string(server.port()));

  supervise(path, have_file, holder, *journal, server, signals);
  bridge::notify_service_manager("STOPPING=1");

  server.stop();
  http_thread.join();
  for (const auto& [name, service] : services.all()) service->stop();
  if (!dispatcher.stop(holder.get()->dispatcher.shutdown_grace)) {
    // Unfinished actions stay journaled as started and follow the retry rules on restart.
    bridge::log(bridge::LogLevel::warn, "grace period over; pending work resumes on restart",
                {{"in_flight", std::to_string(dispatcher.depth())}});
    std::fflush(nullptr);
    _exit(0);
  }
  bridge::log(bridge::LogLevel::info, "stopped",
              {{"unfinished_events", std::to_string(dispatcher.depth())}});
  return kOk;
}

// POST /v1/kintone/directory/sync?wait=1 on the bridge the configuration describes.
// `base_url` empty: http:// and server.listen (a wildcard address as loopback).
int directory_sync(const std::string& path, std::string base_url) {
  auto config = load_or_report(path, std::cerr);
  if (!config) return kBadConfig;
  if (base_url.empty()) {
    std::string host = config->server.listen.substr(0, config->server.listen.rfind(':'));
    if (host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
    base_url = "http://" + host + config->server.listen.substr(config->server.listen.rfind(':'));
  }
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  http::HttpClient client(client_options(*config));
  http::Request request;
  request.method = "POST";
  request.url = base_url + "/v1/kintone/directory/sync?wait=1";
  if (!config->server.tokens.empty())
    request.headers.emplace_back("Authorization", "Bearer " + config->server.tokens.front());
  request.timeout = std::chrono::minutes(10);
  auto outcome = client.perform(request);
  if (outcome.kind != http::OutcomeKind::response) {
    std::cerr << "cannot reach the bridge at " << base_url << ": "
              << config->secrets->redact(outcome.error) << "\n";
    return kRuntimeFailure;
  }
  std::cout << config->secrets->redact(outcome.body) << "\n";
  return outcome.ok() ? kOk : kRuntimeFailure;
}

// `text` with control characters shown as \xNN, so that a stored value cannot drive the terminal
// (journals written before call IDs were checked may hold ANSI escapes).
std::string printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Escalation chains as the escalation service stores them (key-value namespace
// `escalation.chains`, one JSON document per chain).
constexpr std::string_view kChains = "escalation.chains";

int chain_history(bridge::Journal& journal, const std::string& chain_id, std::size_t limit) {
  if (!chain_id.empty()) {
    auto text = journal.kv_get(kChains, chain_id);
    if (!text) {
      std::cerr << "no escalation chain " << chain_id << "\n";
      return kRuntimeFailure;
    }
    std::cout << nlohmann::json::parse(*text, nullptr, false).dump(2) << "\n";
    return kOk;
  }
  std::cout << "CHAIN                                 STATUS     LOOPS  ATTEMPTS  CALL\n";
  std::size_t shown = 0;
  for (const auto& [id, text] : journal.kv_scan(kChains)) {
    if (shown++ >= limit) break;
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) continue;
    char line[512];
    std::snprintf(line, sizeof line, "%-37s %-10s %5s  %8zu  %s\n", id.c_str(),
                  j.value("status", "").c_str(), j.contains("loop") ? j["loop"].dump().c_str() : "",
                  j.contains("attempts") && j["attempts"].is_array() ? j["attempts"].size() : 0,
                  printable(j.value("origin_call_id", "")).c_str());
    std::cout << line;
  }
  return kOk;
}

// `callbridge migrate`: one progress line per table (and every few thousand rows).
int migrate(const std::string& from, const std::string& to) {
  std::string error;
  auto progress = [](const bridge::pg::MigrateProgress& p) {
    std::cerr << "migrate: " << p.table << " " << p.done << "/" << p.total << " (" << p.copied
              << " new)\n";
  };
  if (!bridge::pg::migrate_sqlite_journal(from, to, progress, error)) {
    std::cerr << "migrate: error: " << bridge::pg::redact_conninfo(error) << "\n";
    return kRuntimeFailure;
  }
  std::cout << "migrated " << from << " to " << bridge::pg::redact_conninfo(to) << "\n";
  return kOk;
}

// `callbridge journal check`: exit 0 and "ok" when the journal is sound, 1 and each problem.
int journal_check(const std::string& path) {
  auto config = load_or_report(path, std::cerr);
  if (!config) return kBadConfig;
  if (!config->storage.postgres.empty()) {
    std::cerr << "journal check reads an SQLite journal file; this configuration's journal is in "
                 "PostgreSQL ("
              << journal_name(*config) << "), which checks its own data\n";
    return kBadConfig;
  }
  const std::string& file = config->storage.path;
  auto problems = bridge::SqliteJournal::check(file);
  if (problems.empty()) {
    std::cout << "ok\n";
    return kOk;
  }
  for (const auto& problem : problems) std::cout << file << ": " << problem << "\n";
  std::cout << "the journal is damaged: stop callbridge, keep a copy of " << file
            << " with its -wal and -shm files, then restore a backup or recover it as "
               "docs/reliability.md describes\n";
  return kRuntimeFailure;
}

int history(const std::string& path, const std::string& call_id, bool failures, std::size_t limit,
            bool chains, const std::string& chain_id) {
  auto config = load_or_report(path, std::cerr);
  if (!config) return kBadConfig;
  auto journal = open_journal(*config);
  if (!journal) return kRuntimeFailure;
  if (chains || !chain_id.empty()) return chain_history(*journal, chain_id, limit);
  if (!call_id.empty()) {
    bool found = false;
    std::string text = bridge::call_history(*journal, call_id, found, *config->secrets, 2);
    if (!found) {
      std::cerr << "no call " << call_id << " in " << journal_name(*config) << "\n";
      return kRuntimeFailure;
    }
    std::cout << text << "\n";
    return kOk;
  }
  auto calls = journal->recent_calls(limit, failures);
  std::cout << "CALL                          LAST EVENT                EVENTS  FAILED  PENDING\n";
  for (const auto& c : calls) {
    char line[256];
    std::snprintf(line, sizeof line, "%-29s %-25s %6d  %6d  %7d\n", printable(c.call_id).c_str(),
                  bridge::ms_to_iso(c.last_at_ms).c_str(), c.events, c.failed_actions,
                  c.pending_events);
    std::cout << line;
  }
  if (failures) {
    auto dead = journal->dead_actions(limit);
    if (!dead.empty()) std::cout << "\nDEAD LETTERS (callbridge replay re-runs them)\n";
    for (const auto& a : dead) {
      auto event = journal->event(a.event_seq);
      std::cout << (event ? event->event_id : "?") << "  " << a.rule << "  attempt " << a.attempt
                << "  " << bridge::to_string(a.state) << "  " << printable(a.error) << "\n";
    }
  }
  return kOk;
}

int replay(const std::string& path, const std::string& event_id, const std::string& rule_name,
           bool all, bool list) {
  auto config = load_or_report(path, std::cerr);
  if (!config) return kBadConfig;
  auto journal = open_journal(*config);
  if (!journal) return kRuntimeFailure;
  auto dead = journal->dead_actions(100000);
  if (list || (!all && event_id.empty())) {
    for (const auto& a : dead) {
      auto event = journal->event(a.event_seq);
      std::cout << (event ? event->event_id : "?") << "  "
                << (event ? printable(event->call_id) : "?") << "  " << a.rule << "  "
                << bridge::to_string(a.state) << "  " << printable(a.error) << "\n";
    }
    if (!list) {
      std::cerr << "choose actions with --event EVENT_ID [--rule NAME], or --all\n";
      return kBadConfig;
    }
    return kOk;
  }
  http::HttpClient client(client_options(*config));
  rules::Engine engine(config->rules, config->secrets, &client);
  int replayed = 0, failed = 0;
  for (const auto& a : dead) {
    auto event = journal->event(a.event_seq);
    if (!event) continue;
    if (!all && (event->event_id != event_id || (!rule_name.empty() && a.rule != rule_name)))
      continue;
    const rules::Rule* rule = nullptr;
    for (const auto& r : config->rules->all())
      if (r.name == a.rule) rule = &r;
    if (!rule) {
      std::cerr << event->event_id << " " << a.rule
                << ": no rule of that name in the configuration\n";
      ++failed;
      continue;
    }
    std::string error;
    auto input = event_from_json(nlohmann::json::parse(event->body, nullptr, false), error);
    if (!input) continue;
    rules::CallContext call = bridge::call_context(*journal, event->call_id, &*input);
    int attempt = 0;
    for (const auto& other : journal->actions_of(a.event_seq))
      if (other.rule == a.rule) attempt = std::max(attempt, other.attempt);
    ++attempt;
    std::int64_t started_ms = bridge::unix_ms_now();
    auto outcome = engine.run_rule(*rule, call, [&](const http::Request& shown) {
      return journal->record_action(
          bridge::started_record(a.event_seq, a.rule, attempt, started_ms, shown), error);
    });
    bridge::ActionRecord record =
        bridge::finished_record(a.event_seq, a.rule, attempt, bridge::state_of(outcome.status),
                                outcome, started_ms, *config->secrets);
    journal->record_action(record, error);
    if (record.state == bridge::ActionState::succeeded) {
      bridge::ActionRecord old = a;
      old.state = bridge::ActionState::replayed;
      journal->record_action(old, error);
      ++replayed;
    } else {
      ++failed;
    }
    std::cout << event->event_id << "  " << a.rule << "  attempt " << attempt << "  "
              << bridge::to_string(record.state)
              << (record.error.empty() ? "" : "  " + record.error) << "\n";
  }
  std::cout << replayed << " replayed, " << failed << " failed\n";
  return failed > 0 ? kRuntimeFailure : kOk;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"callbridge: a self-hosted CRM/PBX integration bridge", "callbridge"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("callbridge ") + build::kVersion + " (commit " +
                                        build::kCommit + ", " + build::kBuildType + ")");
  std::string config_path = "callbridge.yaml";

  auto* validate_cmd =
      app.add_subcommand("validate", "Check a configuration file and report every error");
  validate_cmd->add_option("-c,--config", config_path, "Configuration file")
      ->type_name("FILE")
      ->capture_default_str();
  bool strict_env = false;
  validate_cmd->add_flag("--strict-env", strict_env,
                         "An unset ${NAME} is an error (by default a warning, as serve needs it)");

  auto* simulate_cmd = app.add_subcommand(
      "simulate",
      "Show which rules an event runs and the requests they make (--send performs them)");
  std::vector<std::string> event_files;
  bool send = false;
  std::string format_name = "curl";
  simulate_cmd->add_option("-c,--config", config_path, "Configuration file")
      ->type_name("FILE")
      ->capture_default_str();
  simulate_cmd
      ->add_option("-e,--event", event_files,
                   "Event JSON file (an object or an array of events); repeatable")
      ->type_name("FILE")
      ->required();
  simulate_cmd->add_flag("--send", send, "Perform the requests and extract variables");
  simulate_cmd->add_option("-f,--format", format_name, "How requests are shown")
      ->check(CLI::IsMember({"curl", "powershell", "json"}))
      ->capture_default_str();

  auto* serve_cmd = app.add_subcommand("serve", "Run the bridge: HTTP intake, journal, dispatcher");
  auto* serve_config = serve_cmd
                           ->add_option("-c,--config", config_path,
                                        "Configuration file; without one, embedded defaults")
                           ->type_name("FILE")
                           ->capture_default_str();

  auto* history_cmd =
      app.add_subcommand("history", "Recent calls, one call in detail, or failures");
  std::string call_id;
  bool failures = false;
  std::size_t limit = 50;
  history_cmd->add_option("-c,--config", config_path, "Configuration file")
      ->type_name("FILE")
      ->capture_default_str();
  history_cmd->add_option("--call", call_id, "Show one call in detail (JSON)");
  history_cmd->add_flag("--failures", failures,
                        "Only calls with failed actions, and the dead letters");
  history_cmd->add_option("-n,--limit", limit, "How many calls")->capture_default_str();
  bool chains = false;
  std::string chain_id;
  history_cmd->add_flag("--chains", chains, "Escalation chains: status, loops, attempts");
  history_cmd->add_option("--chain", chain_id,
                          "One escalation chain in detail (JSON): parameters, messages, attempts");

  auto* sync_cmd = app.add_subcommand(
      "directory-sync", "Ask the running bridge to sync the kintone customer directory now");
  sync_cmd->add_option("-c,--config", config_path, "Configuration file")
      ->type_name("FILE")
      ->capture_default_str();
  std::string bridge_url;
  sync_cmd->add_option("--url", bridge_url,
                       "The bridge's base URL (default: http:// and server.listen)");

  auto* replay_cmd = app.add_subcommand("replay", "Re-run dead-lettered actions");
  std::string event_id, rule_name;
  bool replay_all = false, replay_list = false;
  replay_cmd->add_option("-c,--config", config_path, "Configuration file")
      ->type_name("FILE")
      ->capture_default_str();
  replay_cmd->add_option("--event", event_id, "Event ID (ev-N) whose dead actions to re-run");
  replay_cmd->add_option("--rule", rule_name, "Only this rule of that event");
  replay_cmd->add_flag("--all", replay_all, "Re-run every dead-lettered action");
  replay_cmd->add_flag("--list", replay_list, "List dead-lettered actions and exit");

  auto* journal_cmd = app.add_subcommand("journal", "Look after the journal");
  journal_cmd->require_subcommand(1);
  auto* journal_check_cmd = journal_cmd->add_subcommand(
      "check", "Check the journal file for damage (exit 0 and \"ok\" when sound)");
  journal_check_cmd->add_option("-c,--config", config_path, "Configuration file")
      ->type_name("FILE")
      ->capture_default_str();

  auto* migrate_cmd = app.add_subcommand(
      "migrate", "Copy an SQLite journal into PostgreSQL (idempotent; password from PGPASSWORD)");
  std::string migrate_from, migrate_to;
  migrate_cmd->add_option("--from", migrate_from, "SQLite journal file")
      ->type_name("FILE")
      ->required();
  migrate_cmd->add_option("--to", migrate_to, "postgresql:// URL (no password needed in it)")
      ->type_name("URL")
      ->required();

  auto* schema_cmd = app.add_subcommand(
      "schema", "Print the JSON Schema of the configuration file (for editors and validators)");

  // Hidden: the package runs it at build time to install the bash completion.
  auto* completion_cmd =
      app.add_subcommand("completion", "Print a shell completion script")->group("");
  std::string shell = "bash";
  completion_cmd->add_option("shell", shell, "Shell")->check(CLI::IsMember({"bash"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kOk : kBadConfig;
  }
  if (schema_cmd->parsed()) {
    std::cout << rules::config_schema(bridge::connector_registry()).dump(2) << "\n";
    return kOk;
  }
  if (completion_cmd->parsed()) {
    std::cout << bridge::bash_completion(app);
    return kOk;
  }
  if (validate_cmd->parsed()) return validate(config_path, strict_env);
  if (serve_cmd->parsed()) return serve(config_path, serve_config->count() > 0);
  if (history_cmd->parsed())
    return history(config_path, call_id, failures, limit, chains, chain_id);
  if (sync_cmd->parsed()) return directory_sync(config_path, bridge_url);
  if (journal_check_cmd->parsed()) return journal_check(config_path);
  if (migrate_cmd->parsed()) return migrate(migrate_from, migrate_to);
  if (replay_cmd->parsed())
    return replay(config_path, event_id, rule_name, replay_all, replay_list);
  if (simulate_cmd->parsed()) {
    CommandFormat format = format_name == "powershell" ? CommandFormat::powershell
                           : format_name == "json"     ? CommandFormat::json
                                                       : CommandFormat::curl;
    return simulate(config_path, event_files, send, format);
  }
  return kBadConfig;
}

}  // namespace callbridge
