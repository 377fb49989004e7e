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
#include <tuple>

#include "bridge/action_record.h"
#include "bridge/app.h"
#include "bridge/command_format.h"
#include "bridge/completion.h"
#include "bridge/console_auth.h"
#include "bridge/dispatcher.h"
#include "bridge/event_input.h"
#include "bridge/history.h"
#include "bridge/journal/journal.h"
#include "bridge/journal/postgres/connection.h"
#include "bridge/journal/postgres/migrate.h"
#include "bridge/journal/sqlite/sqlite_journal.h"
#include "bridge/replay.h"
#include "bridge/systemd.h"
#include "bridge/version.h"
#include "log/log.h"
#include "rules/action.h"
#include "rules/config.h"
#include "rules/config_reader.h"
#include "rules/config_schema.h"
#include "rules/engine.h"
#include "rules/printable.h"
#include "rules/registry.h"

namespace callbridge {

namespace {

constexpr int kOk = 0, kRuntimeFailure = 1, kBadConfig = 2;
// How long `serve` waits for a signal at a time.
constexpr timespec kSignalWait{1, 0};

// The connectors main() passed in (bridge/connectors.cc); the core alone until then.
const rules::Registry* g_registry = &rules::core_registry();
const rules::Registry& connector_registry() {
  return *g_registry;
}

// `checking`: a file being checked (validate, simulate) rather than run; its warnings and notes
// are shown, and an unset ${NAME} is a warning unless `strict_env`.
std::optional<rules::Config> load_or_report(const std::string& path, std::ostream& err,
                                            bool checking = false, bool strict_env = true) {
  rules::LoadResult result =
      rules::load_config_file(path, rules::process_env, connector_registry(),
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
  http::HttpClient client(bridge::client_options(*config));
  rules::Engine engine(config->rules, config->secrets, send ? &client : nullptr);
  std::map<std::string, rules::CallContext> calls;
  bool failed = false;
  for (const auto& event : events) {
    rules::CallContext& call = calls[event.call_id];
    std::cout << "== event " << event.event << ", call " << event.call_id << "\n";
    auto outcomes = engine.run(event, call);
    if (outcomes.empty()) std::cout << "   (no rules for this event)\n";
    for (const auto& o : outcomes) {
      print_rule_outcome(std::cout, o, *config, format);
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

// The journal as messages name it: its file, or its PostgreSQL URL without the password.
std::string journal_name(const rules::Config& config) {
  if (config.storage.postgres.empty()) return config.storage.path;
  return bridge::pg::redact_conninfo(config.storage.postgres);
}

std::unique_ptr<bridge::Journal> open_journal(const rules::Config& config) {
  std::string error;
  auto journal = bridge::Journal::open(bridge::journal_options(config), error);
  if (!journal)
    std::cerr << journal_name(config)
              << ": error: cannot open journal: " << config.secrets->redact(error) << "\n";
  return journal;
}

// Not ready but still serving for server.drain_seconds, so that a load balancer moves traffic
// to other nodes first; a second SIGTERM or SIGINT ends it at once.
void drain(bridge::App& app, const sigset_t& signals) {
  const auto seconds = app.config()->server.drain_seconds;
  if (seconds <= 0) return;
  app.server().drain();
  log::write(log::Level::info, "draining", {{"seconds", std::to_string(seconds)}});
  bridge::notify_service_manager("STATUS=draining");
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (true) {
    auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec wait{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      log::write(log::Level::info, "drain cut short",
                 {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      return;
    }
  }
}

// Reloads on SIGHUP (an invalid file keeps the rules in force) and stops on SIGTERM/SIGINT.
// Old calls are pruned by the App, on the node holding bridge::kPruneLease.
void supervise(const std::string& path, bool have_file, bridge::App& app, const sigset_t& signals) {
  while (true) {
    int sig = sigtimedwait(&signals, nullptr, &kSignalWait);
    if (sig == SIGTERM || sig == SIGINT) {
      log::write(log::Level::info, "shutting down",
                 {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      drain(app, signals);
      return;
    }
    if (sig != SIGHUP) continue;
    app.reload_tls();
    if (have_file)
      app.reload_file(path);
    else
      log::write(log::Level::warn, "SIGHUP ignored: running on embedded defaults");
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
    log::write(log::Level::info, "no configuration file: running on embedded defaults",
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

  std::string error;
  std::string journal_path = journal_name(config);
  std::shared_ptr<const rules::SecretSet> secrets = config.secrets;
  bridge::AppOptions options;
  options.config_path = have_file ? path : "";
  // A reload the console asks for is a SIGHUP to this process, as from systemctl reload.
  options.request_reload = [] { ::kill(::getpid(), SIGHUP); };
  auto app = bridge::App::create(std::move(config), connector_registry(), options, error);
  if (!app) {
    std::cerr << journal_path << ": error: cannot open journal: " << secrets->redact(error) << "\n";
    return kRuntimeFailure;
  }
  if (!app->start(error)) {
    log::write(log::Level::error, "cannot start", {{"error", error}});
    return kRuntimeFailure;
  }
  auto running = app->config();
  log::write(log::Level::info, "listening",
             {{"listen", running->server.listen},
              {"scheme", app->server().tls() ? "https" : "http"},
              {"port", std::to_string(app->server().port())},
              {"journal", journal_name(*running)},
              {"rules", std::to_string(running->rules->all().size())},
              {"recovered_events", std::to_string(app->recovered())}});
  // The journal is open and the listening socket bound: connections are accepted from now on.
  bridge::notify_service_manager("READY=1\nSTATUS=listening on port " +
                                 std::to_string(app->server().port()));

  supervise(path, have_file, *app, signals);
  bridge::notify_service_manager("STOPPING=1");

  if (!app->stop()) {
    // Unfinished actions stay journaled as started and follow the retry rules on restart.
    log::write(log::Level::warn, "grace period over; pending work resumes on restart",
               {{"in_flight", std::to_string(app->dispatcher().depth())}});
    std::fflush(nullptr);
    _exit(0);
  }
  log::write(log::Level::info, "stopped",
             {{"unfinished_events", std::to_string(app->dispatcher().depth())}});
  return kOk;
}

// A connector's subcommand: its configuration loaded and checked, the outbound client set up.
int run_command(const rules::Command& command, const std::string& path,
                const std::map<std::string, std::string>& options) {
  auto config = load_or_report(path, std::cerr);
  if (!config) return kBadConfig;
  http::HttpClient client(bridge::client_options(*config));
  return command.run({*config, client, options, std::cout, std::cerr});
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

// A connector's history view asked for: `--LIST` (listed true) or `--ITEM ID` (id not empty).
struct ViewRequest {
  const rules::HistoryView* view = nullptr;
  bool listed = false;
  std::string id;
};

int history(const std::string& path, const std::string& call_id, bool failures, std::size_t limit,
            const std::vector<ViewRequest>& views) {
  auto config = load_or_report(path, std::cerr);
  if (!config) return kBadConfig;
  auto journal = open_journal(*config);
  if (!journal) return kRuntimeFailure;
  for (const auto& v : views) {
    if (!v.listed && v.id.empty()) continue;
    bridge::JournalStore store(*journal);
    if (!v.id.empty()) return v.view->show(store, v.id, std::cout, std::cerr);
    return v.view->list(store, limit, std::cout, std::cerr);
  }
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
    std::snprintf(line, sizeof line, "%-29s %-25s %6d  %6d  %7d\n",
                  rules::printable(c.call_id).c_str(), bridge::ms_to_iso(c.last_at_ms).c_str(),
                  c.events, c.failed_actions, c.pending_events);
    std::cout << line;
  }
  if (failures) {
    auto dead = journal->dead_actions(limit);
    if (!dead.empty()) std::cout << "\nDEAD LETTERS (callbridge replay re-runs them)\n";
    for (const auto& a : dead) {
      auto event = journal->event(a.event_seq);
      std::cout << (event ? event->event_id : "?") << "  " << a.rule << "  attempt " << a.attempt
                << "  " << bridge::to_string(a.state) << "  " << rules::printable(a.error) << "\n";
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
                << (event ? rules::printable(event->call_id) : "?") << "  " << a.rule << "  "
                << bridge::to_string(a.state) << "  " << rules::printable(a.error) << "\n";
    }
    if (!list) {
      std::cerr << "choose actions with --event EVENT_ID [--rule NAME], or --all\n";
      return kBadConfig;
    }
    return kOk;
  }
  http::HttpClient client(bridge::client_options(*config));
  rules::Engine engine(config->rules, config->secrets, &client);
  int replayed = 0, failed = 0;
  for (const auto& a : dead) {
    auto event = journal->event(a.event_seq);
    if (!event) continue;
    if (!all && (event->event_id != event_id || (!rule_name.empty() && a.rule != rule_name)))
      continue;
    auto result = bridge::replay_action(*journal, engine, *config, a);
    if (result.kind == bridge::ReplayResult::Kind::unreadable_event) continue;
    if (result.kind == bridge::ReplayResult::Kind::no_rule) {
      std::cerr << event->event_id << " " << a.rule
                << ": no rule of that name in the configuration\n";
      ++failed;
      continue;
    }
    ++(result.state == bridge::ActionState::succeeded ? replayed : failed);
    std::cout << event->event_id << "  " << a.rule << "  attempt " << result.attempt << "  "
              << bridge::to_string(result.state)
              << (result.error.empty() ? "" : "  " + result.error) << "\n";
  }
  std::cout << replayed << " replayed, " << failed << " failed\n";
  return failed > 0 ? kRuntimeFailure : kOk;
}

// `callbridge hash-password`: the first line of standard input (its line ending dropped).
int hash_password(int iterations) {
  std::string password;
  if (!std::getline(std::cin, password) || password.empty()) {
    std::cerr << "hash-password: no password on standard input\n";
    return kBadConfig;
  }
  if (!password.empty() && password.back() == '\r') password.pop_back();
  std::cout << bridge::hash_password(password, iterations) << "\n";
  return kOk;
}

}  // namespace

int run_cli(int argc, char** argv, const rules::Registry& registry) {
  // The bridge's own section beside the connectors': the web console's users.
  static rules::Registry with_console;
  with_console = bridge::with_bridge_sections(registry);
  g_registry = &with_console;
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
  std::vector<ViewRequest> views;
  views.reserve(registry.history_views().size());
  for (const auto& view : registry.history_views()) {
    auto& v = views.emplace_back(ViewRequest{&view, false, {}});
    history_cmd->add_flag("--" + view.list_flag, v.listed, view.list_help);
    history_cmd->add_option("--" + view.item_option, v.id, view.item_help);
  }

  // Connectors' own subcommands, each with -c,--config and its options.
  struct CommandRequest {
    const rules::Command* command;
    CLI::App* app;
    std::map<std::string, std::string> options;
  };
  std::vector<CommandRequest> commands;
  commands.reserve(registry.commands().size());
  for (const auto& command : registry.commands()) {
    auto& c = commands.emplace_back(
        CommandRequest{&command, app.add_subcommand(command.name, command.help), {}});
    c.app->add_option("-c,--config", config_path, "Configuration file")
        ->type_name("FILE")
        ->capture_default_str();
    for (const auto& option : command.options)
      c.app->add_option("--" + option.name, c.options[option.name], option.help);
  }

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

  auto* hash_cmd = app.add_subcommand(
      "hash-password", "Read a password on standard input and print its hash for console.users");
  int hash_iterations = bridge::kDefaultPasswordIterations;
  hash_cmd->add_option("--iterations", hash_iterations, "PBKDF2 iterations")
      ->check(CLI::Range(1000, 100000000))
      ->capture_default_str();

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
    std::cout << rules::config_schema(connector_registry()).dump(2) << "\n";
    return kOk;
  }
  if (completion_cmd->parsed()) {
    std::cout << bridge::bash_completion(app);
    return kOk;
  }
  if (validate_cmd->parsed()) return validate(config_path, strict_env);
  if (serve_cmd->parsed()) return serve(config_path, serve_config->count() > 0);
  if (history_cmd->parsed()) return history(config_path, call_id, failures, limit, views);
  for (const auto& c : commands) {
    if (!c.app->parsed()) continue;
    std::map<std::string, std::string> given;
    for (const auto& [name, value] : c.options)
      if (c.app->count("--" + name) > 0) given[name] = value;
    return run_command(*c.command, config_path, given);
  }
  if (journal_check_cmd->parsed()) return journal_check(config_path);
  if (hash_cmd->parsed()) return hash_password(hash_iterations);
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
