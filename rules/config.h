// The validated configuration: server, storage, HTTP client settings and the rule set. Built
// only by the loader; a Config that exists is known to be valid.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rules/regex.h"
#include "rules/secrets.h"
#include "rules/template.h"

namespace callbridge::rules {

struct SourceLocation {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based
};

struct Gate {
  Template code;
  Regex pattern;
};

struct HeaderSpec {
  std::string name;
  Template value;
  bool secret = false;  // computed auth headers: always shown as [secret]
};

class RequestInspector;

struct RequestSpec {
  std::string method = "GET";
  Template url;
  bool pseudo_response = false;  // `response://TEXT`: no network, TEXT is the response body
  std::vector<HeaderSpec> headers;
  Template body;
  std::chrono::milliseconds timeout{10000};
  // Connectors' inspectors that adapt this request before each send (rules/registry.h).
  std::vector<std::shared_ptr<const RequestInspector>> inspectors;
};

// Which failures are tried again, and how often. `on_*` unset: by method (see docs/server.md).
struct RetryPolicy {
  int attempts = 8;  // in all, the first included
  std::chrono::milliseconds backoff{1000};
  std::chrono::milliseconds max_backoff{60000};
  std::optional<bool> on_connect, on_timeout, on_429, on_5xx;
};

class Action;

// A connector's top-level configuration section, validated once at load (see rules/registry.h).
class Section {
 public:
  virtual ~Section() = default;
};

struct Rule {
  std::string name;
  std::string event;  // canonical
  int order = 0;
  std::size_t position = 0;  // index in the file, for ties
  std::optional<Gate> when;
  RequestSpec request;                   // used when `action` is null
  std::shared_ptr<const Action> action;  // a typed action (kintone, decide, escalate...)
  std::string action_key;                // the rule key it was written under
  std::optional<Regex> extract;
  std::optional<RetryPolicy> retry;
  std::string memo;
  SourceLocation location;
};

// Rules grouped by event and sorted by (order, position).
class RuleSet {
 public:
  RuleSet() = default;
  explicit RuleSet(std::vector<Rule> rules);
  RuleSet(const RuleSet&) = delete;  // the index points into rules_
  RuleSet& operator=(const RuleSet&) = delete;
  const std::vector<const Rule*>& for_event(const std::string& event) const;
  const std::vector<Rule>& all() const { return rules_; }

 private:
  std::vector<Rule> rules_;
  std::map<std::string, std::vector<const Rule*>, std::less<>> by_event_;
};

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  std::vector<std::string> tokens;
  int threads = 32;                    // HTTP workers; they serve only whole requests
  std::size_t max_body_bytes = 65536;  // larger requests get 413, chunked or not
  int keep_alive_max_count = 1000;
  int keep_alive_timeout_seconds = 5;
  // server.tls: HTTPS with this PEM certificate chain and key (TLS 1.2 or later); re-read on
  // SIGHUP. Empty: plain HTTP.
  std::string tls_cert_file, tls_key_file;
  int read_timeout_ms = 10000;               // a request's headers and body, from its first byte
  int max_waiting_connections = 1024;        // connections without a whole request yet
  int max_json_depth = 64;                   // nesting of any JSON body
  std::size_t max_expanded_bytes = 1 << 20;  // what one payload may grow into (variables)
  // On SIGTERM: seconds of answering /readyz 503 "draining" while still serving, before the
  // listener stops (0: stop at once).
  int drain_seconds = 5;
};

struct StorageConfig {
  std::string path = "callbridge.db";
  std::string postgres;         // a postgresql:// URL: the journal is in PostgreSQL, `path` unused
  bool fsync = true;            // fsync every group commit (survives power loss, not just a crash)
  int retention_days = 30;      // calls older than this are pruned
  std::size_t max_batch = 512;  // journal writes committed in one transaction at most
};

// cluster: several nodes on one PostgreSQL journal (docs/cluster.md).
struct ClusterConfig {
  // This node's name as a lease owner; empty: "<hostname>-<pid>-<random>", chosen at start-up,
  // so that a restarted process is a new owner.
  std::string node_id;
  int lease_seconds = 10;  // a lease lasts this long unless renewed (every third of it)
};

struct DispatcherConfig {
  int workers = 64;            // concurrent actions (docs/server.md, "Workers")
  int queue_capacity = 10000;  // accepted, unfinished events; beyond it intake answers 503
  RetryPolicy retry;           // default for rules without their own
  std::chrono::milliseconds shutdown_grace{10000};
};

struct HttpClientConfig {
  bool verify_tls = true;
  std::string ca_file;
  std::size_t max_response_bytes = 4u << 20;
  // Kept-alive outbound connections per scheme://host:port; 0: as many as dispatcher.workers.
  std::size_t max_idle_per_origin = 0;
};

struct Config {
  std::string file;
  ServerConfig server;
  StorageConfig storage;
  ClusterConfig cluster;
  HttpClientConfig http;
  DispatcherConfig dispatcher;
  std::shared_ptr<const RuleSet> rules = std::make_shared<RuleSet>();
  std::shared_ptr<const SecretSet> secrets = std::make_shared<SecretSet>();
  // Connector sections by top-level key.
  std::map<std::string, std::shared_ptr<const Section>, std::less<>> sections;

  // The section loaded under `key` as its connector's type; null when absent. The one way a
  // section is found, here and in ConfigReader while loading.
  template <class T>
  std::shared_ptr<const T> section(std::string_view key) const {
    auto it = sections.find(key);
    return it == sections.end() ? nullptr : std::dynamic_pointer_cast<const T>(it->second);
  }
};

enum class Severity { error, warning, note };

struct Diagnostic {
  SourceLocation location;
  std::string message;
  Severity severity = Severity::error;
  std::string format() const;  // FILE:LINE:COL: error: MESSAGE (or warning:, note:)
};

struct LoadResult {
  std::optional<Config> config;
  std::vector<Diagnostic> errors;  // every error found, in file order
  std::vector<Diagnostic> notes;   // warnings and notes, in file order; never stop a load
};

// What an unset `${NAME}` is. `serve` needs every secret (error); `validate` checks a file
// without production secrets (warning, and the rest is checked with a placeholder value).
enum class UnsetEnv { error, warning };

// Reads `${NAME}` from the process environment.
std::optional<std::string> process_env(std::string_view name);

class Registry;
// The registry with no connectors: raw call actions only.
const Registry& core_registry();

LoadResult load_config_text(std::string_view yaml, const std::string& file,
                            const Template::EnvLookup& env = process_env,
                            const Registry& registry = core_registry(),
                            UnsetEnv unset_env = UnsetEnv::error);
LoadResult load_config_file(const std::string& path, const Template::EnvLookup& env = process_env,
                            const Registry& registry = core_registry(),
                            UnsetEnv unset_env = UnsetEnv::error);

}  // namespace callbridge::rules
