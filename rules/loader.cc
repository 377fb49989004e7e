#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "rules/config.h"
#include "rules/config_reader.h"
#include "rules/events.h"
#include "rules/registry.h"

namespace callbridge::rules {

namespace {

constexpr const char* kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Walks the YAML tree once, collecting every error with its position.
class Loader : public ConfigReader {
 public:
  Loader(std::string file, const Template::EnvLookup& env, const Registry& registry,
         UnsetEnv unset_env)
      : ConfigReader(std::move(file), env, unset_env), registry_(registry) {}

  LoadResult run(std::string_view text) {
    source_ = text;
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
      LoadResult result;
      errors_.push_back({{file_, e.mark.line + 1, e.mark.column + 1}, e.msg});
      result.errors = std::move(errors_);
      return result;
    }
    return run(root);
  }

  LoadResult run(const YAML::Node& root) {
    LoadResult result;
    Config config;
    config.file = file_;
    if (root.IsNull()) {
      // An empty file is a valid configuration with no rules.
    } else if (!root.IsMap()) {
      error(root, "the configuration must be a mapping with keys server, storage, http, rules");
    } else {
      std::vector<std::string> keys{"server", "storage", "cluster", "http", "dispatcher", "rules"};
      for (const auto& section : registry_.sections()) keys.push_back(section.key);
      check_keys(root, keys);
      if (auto n = root["server"]) load_server(n, config.server);
      if (auto n = root["storage"]) load_storage(n, config.storage);
      if (auto n = root["cluster"]) load_cluster(n, config.cluster);
      if (auto n = root["dispatcher"]) load_dispatcher(n, config.dispatcher);
      retry_default_ = config.dispatcher.retry;
      if (auto n = root["http"]) load_http(n, config.http);
      for (const auto& section : registry_.sections()) {
        auto n = root[section.key];
        if (!n) continue;
        if (auto loaded = section.load(n, *this)) sections_[section.key] = loaded;
      }
      config.sections = sections_;
      if (auto n = root["rules"]) config.rules = std::make_shared<RuleSet>(load_rules(n));
    }
    config.secrets = secrets_;
    auto in_file_order = [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.location.line, a.location.column) <
             std::tie(b.location.line, b.location.column);
    };
    std::stable_sort(errors_.begin(), errors_.end(), in_file_order);
    std::stable_sort(notes_.begin(), notes_.end(), in_file_order);
    if (errors_.empty()) result.config = std::move(config);
    result.errors = std::move(errors_);
    result.notes = std::move(notes_);
    return result;
  }

 private:
  void load_server(const YAML::Node& node, ServerConfig& out) {
    if (!expect_map(node, "server")) return;
    check_keys(node,
               {"listen", "tokens", "threads", "max_body_bytes", "keep_alive_max_count",
                "keep_alive_timeout_seconds", "read_timeout_ms", "max_waiting_connections",
                "max_json_depth", "max_expanded_bytes", "tls", "drain_seconds"},
               "server");
    if (auto n = node["tls"]) load_tls(n, out);
    if (auto n = node["threads"])
      if (auto v = integer(n, "server.threads", 2, 1024)) out.threads = static_cast<int>(*v);
    if (auto n = node["max_body_bytes"])
      if (auto v = integer(n, "server.max_body_bytes", 1024, 16ll << 20))
        out.max_body_bytes = static_cast<std::size_t>(*v);
    if (auto n = node["keep_alive_max_count"])
      if (auto v = integer(n, "server.keep_alive_max_count", 1, 1000000))
        out.keep_alive_max_count = static_cast<int>(*v);
    if (auto n = node["keep_alive_timeout_seconds"])
      if (auto v = integer(n, "server.keep_alive_timeout_seconds", 1, 3600))
        out.keep_alive_timeout_seconds = static_cast<int>(*v);
    if (auto n = node["read_timeout_ms"])
      if (auto v = integer(n, "server.read_timeout_ms", 100, 300000))
        out.read_timeout_ms = static_cast<int>(*v);
    if (auto n = node["max_waiting_connections"])
      if (auto v = integer(n, "server.max_waiting_connections", 16, 65536))
        out.max_waiting_connections = static_cast<int>(*v);
    if (auto n = node["max_json_depth"])
      if (auto v = integer(n, "server.max_json_depth", 2, 512))
        out.max_json_depth = static_cast<int>(*v);
    if (auto n = node["max_expanded_bytes"])
      if (auto v = integer(n, "server.max_expanded_bytes", 4096, 64ll << 20))
        out.max_expanded_bytes = static_cast<std::size_t>(*v);
    if (auto n = node["drain_seconds"])
      if (auto v = integer(n, "server.drain_seconds", 0, 300))
        out.drain_seconds = static_cast<int>(*v);
    if (auto n = node["listen"]) {
      if (auto v = string_setting(n, "server.listen")) {
        auto colon = v->rfind(':');
        if (colon == std::string::npos || colon == 0 ||
            v->find_first_not_of("0123456789", colon + 1) != std::string::npos ||
            colon + 1 == v->size() || std::stol(v->substr(colon + 1)) > 65535) {
          error(n, "\"server.listen\": must be HOST:PORT, got \"" + *v + "\"");
        } else {
          out.listen = *v;
        }
      }
    }
    if (auto n = node["tokens"]) {
      record(n, ValueKind::list);
      if (!n.IsSequence()) {
        error(n, "\"server.tokens\" must be a list");
      } else {
        for (const auto& t : n) {
          auto v = string_setting(t, "server.tokens");
          if (!v) continue;
          if (v->size() < 16) {
            error(t, "\"server.tokens\": a token must be at least 16 characters");
            continue;
          }
          secrets_->add(*v);
          out.tokens.push_back(*v);
        }
      }
    }
  }

  void load_tls(const YAML::Node& node, ServerConfig& out) {
    if (!expect_map(node, "server.tls")) return;
    check_keys(node, {"cert_file", "key_file"}, "server.tls");
    auto cert = required(node, "cert_file", "server.tls");
    auto key = required(node, "key_file", "server.tls");
    if (!cert || !key) return;
    auto cert_file = string_setting(cert, "server.tls.cert_file");
    auto key_file = string_setting(key, "server.tls.key_file");
    for (const auto& [n, file] : {std::pair{cert, cert_file}, std::pair{key, key_file}})
      if (file && !std::ifstream(*file)) error(n, "\"server.tls\": cannot read " + *file);
    if (cert_file && key_file) {
      out.tls_cert_file = *cert_file;
      out.tls_key_file = *key_file;
    }
  }

  void load_storage(const YAML::Node& node, StorageConfig& out) {
    if (!expect_map(node, "storage")) return;
    check_keys(node, {"path", "postgres", "fsync", "retention_days", "max_batch"}, "storage");
    if (auto n = node["path"])
      if (auto v = string_setting(n, "storage.path")) out.path = *v;
    if (auto n = node["postgres"]) {
      if (node["path"])
        error(n,
              "\"storage\": \"path\" (an SQLite file) and \"postgres\" cannot both be set; "
              "keep one");
      if (auto v = string_setting(n, "storage.postgres")) load_postgres_url(n, *v, out);
    }
    if (auto n = node["fsync"])
      if (auto v = boolean(n, "storage.fsync")) out.fsync = *v;
    if (auto n = node["retention_days"])
      if (auto v = integer(n, "storage.retention_days", 1, 3650))
        out.retention_days = static_cast<int>(*v);
    if (auto n = node["max_batch"])
      if (auto v = integer(n, "storage.max_batch", 1, 65536))
        out.max_batch = static_cast<std::size_t>(*v);
  }

  void load_cluster(const YAML::Node& node, ClusterConfig& out) {
    if (!expect_map(node, "cluster")) return;
    check_keys(node, {"node_id", "lease_seconds"}, "cluster");
    if (auto n = node["node_id"]) {
      if (auto v = string_setting(n, "cluster.node_id")) {
        bool printable = std::all_of(v->begin(), v->end(), [](char c) {
          return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7F;
        });
        if (v->empty() || v->size() > 128 || !printable)
          error(n,
                "\"cluster.node_id\": must be 1 to 128 printable ASCII characters without "
                "spaces, got \"" +
                    *v + "\"");
        else
          out.node_id = *v;
      }
    }
    if (auto n = node["lease_seconds"])
      if (auto v = integer(n, "cluster.lease_seconds", 1, 300))
        out.lease_seconds = static_cast<int>(*v);
  }

  // A postgresql:// (or postgres://) URL. Its password, written inline or from `${ENV}`, is
  // a secret: it never shows in messages, history or the schema.
  void load_postgres_url(const YAML::Node& node, const std::string& url, StorageConfig& out) {
    if (url.rfind("postgresql://", 0) != 0 && url.rfind("postgres://", 0) != 0) {
      error(node, "\"storage.postgres\": must be a postgresql:// URL");
      return;
    }
    std::size_t start = url.find("://") + 3;
    std::size_t at = url.find('@', start);
    std::size_t colon = url.find(':', start);
    if (at != std::string::npos && colon < at && url.find('/', start) > at)
      secrets().add(url.substr(colon + 1, at - colon - 1));
    out.postgres = url;
  }

  void load_dispatcher(const YAML::Node& node, DispatcherConfig& out) {
    if (!expect_map(node, "dispatcher")) return;
    check_keys(node, {"workers", "queue_capacity", "retry", "shutdown_grace_ms"}, "dispatcher");
    if (auto n = node["workers"])
      if (auto v = integer(n, "dispatcher.workers", 1, 1024)) out.workers = static_cast<int>(*v);
    if (auto n = node["queue_capacity"])
      if (auto v = integer(n, "dispatcher.queue_capacity", 1, 10000000))
        out.queue_capacity = static_cast<int>(*v);
    if (auto n = node["shutdown_grace_ms"])
      if (auto v = integer(n, "dispatcher.shutdown_grace_ms", 0, 600000))
        out.shutdown_grace = std::chrono::milliseconds(*v);
    if (auto n = node["retry"])
      if (auto v = load_retry(n, "dispatcher.retry", out.retry)) out.retry = *v;
  }

  std::optional<RetryPolicy> load_retry(const YAML::Node& node, const std::string& what,
                                        RetryPolicy policy) {
    if (!expect_map(node, what)) return std::nullopt;
    check_keys(node, {"attempts", "backoff_ms", "max_backoff_ms", "on"}, what);
    std::size_t before = errors_.size();
    if (auto n = node["attempts"])
      if (auto v = integer(n, what + ".attempts", 1, 100)) policy.attempts = static_cast<int>(*v);
    if (auto n = node["backoff_ms"])
      if (auto v = integer(n, what + ".backoff_ms", 1, 3600000))
        policy.backoff = std::chrono::milliseconds(*v);
    if (auto n = node["max_backoff_ms"])
      if (auto v = integer(n, what + ".max_backoff_ms", 1, 3600000))
        policy.max_backoff = std::chrono::milliseconds(*v);
    if (auto n = node["on"]) {
      record(n, ValueKind::list);
      if (!n.IsSequence()) {
        error(n, "\"" + what + ".on\" must be a list of: connect, timeout, 429, 5xx");
      } else {
        policy.on_connect = policy.on_timeout = policy.on_429 = policy.on_5xx = false;
        for (const auto& item : n) {
          if (recorder_)
            recorder_->kind(item, {ValueKind::choice, 0, 0, {"connect", "timeout", "429", "5xx"}});
          std::string v = item.Scalar();
          if (v == "connect")
            policy.on_connect = true;
          else if (v == "timeout")
            policy.on_timeout = true;
          else if (v == "429")
            policy.on_429 = true;
          else if (v == "5xx")
            policy.on_5xx = true;
          else
            error(item, "unknown retry condition \"" + v + "\"; known: connect, timeout, 429, 5xx");
        }
      }
    }
    if (policy.max_backoff < policy.backoff) policy.max_backoff = policy.backoff;
    if (errors_.size() != before) return std::nullopt;
    return policy;
  }

  void load_http(const YAML::Node& node, HttpClientConfig& out) {
    if (!expect_map(node, "http")) return;
    check_keys(node, {"verify_tls", "ca_file", "max_response_bytes", "max_idle_per_origin"},
               "http");
    if (auto n = node["verify_tls"])
      if (auto v = boolean(n, "http.verify_tls")) out.verify_tls = *v;
    if (auto n = node["ca_file"])
      if (auto v = string_setting(n, "http.ca_file")) out.ca_file = *v;
    if (auto n = node["max_response_bytes"])
      if (auto v = integer(n, "http.max_response_bytes", 1024, 64ll << 20))
        out.max_response_bytes = static_cast<std::size_t>(*v);
    if (auto n = node["max_idle_per_origin"])
      if (auto v = integer(n, "http.max_idle_per_origin", 1, 1024))
        out.max_idle_per_origin = static_cast<std::size_t>(*v);
  }

  std::vector<Rule> load_rules(const YAML::Node& node) {
    std::vector<Rule> rules;
    record(node, ValueKind::list);
    if (!node.IsSequence()) {
      error(node, "\"rules\" must be a list of rules");
      return rules;
    }
    std::map<std::string, YAML::Mark> names;
    for (std::size_t i = 0; i < node.size(); ++i) {
      const YAML::Node r = node[i];
      Rule rule;
      rule.position = i;
      rule.location = where(r);
      if (!expect_map(r, "rules[" + std::to_string(i) + "]")) continue;
      std::size_t before = errors_.size();
      std::vector<std::string> keys{"name",    "event",   "order", "when",
                                    "request", "extract", "retry", "memo"};
      for (const auto& action : registry_.actions()) keys.push_back(action.key);
      check_keys(r, keys, "rule");
      if (auto n = r["name"]) {
        if (auto v = scalar(n, "name")) {
          rule.name = *v;
          if (rule.name.empty()) error(n, "\"name\" must not be empty");
          auto [it, fresh] = names.emplace(rule.name, n.Mark());
          if (!fresh)
            error(n, "duplicate rule name \"" + rule.name + "\" (first at line " +
                         std::to_string(it->second.line + 1) + ")");
        }
      } else {
        error(r, "rule is missing required key \"name\"");
      }
      std::string label = rule.name.empty() ? "rule " + std::to_string(i + 1) : rule.name;
      if (auto n = r["event"]) {
        if (auto v = scalar(n, "event")) {
          if (auto canonical = canonical_event(*v)) {
            rule.event = *canonical;
          } else {
            error(n, "unknown event \"" + *v + "\"; known: " + known_events());
          }
        }
      } else {
        error(r, "rule \"" + label + "\" is missing required key \"event\"");
      }
      if (auto n = r["order"])
        if (auto v = integer(n, "order", -1000000, 1000000)) rule.order = static_cast<int>(*v);
      if (auto n = r["memo"])
        if (auto v = scalar(n, "memo")) rule.memo = *v;
      if (auto n = r["when"]) load_gate(n, rule);
      std::vector<std::string> given;
      if (r["request"]) given.push_back("request");
      for (const auto& action : registry_.actions())
        if (r[action.key]) given.push_back(action.key);
      if (given.empty()) {
        std::string known = "request";
        for (const auto& action : registry_.actions()) known += ", " + action.key;
        error(r, "rule \"" + label + "\" needs one action; known: " + known);
      } else if (given.size() > 1) {
        error(r, "rule \"" + label + "\" has more than one action: " + join(given));
      } else if (given[0] == "request") {
        load_request(r["request"], rule.request);
      } else {
        rule.action_key = given[0];
        if (auto loaded = registry_.action(given[0])->load(r[given[0]], *this, label))
          rule.action = std::move(loaded);
        else if (errors_.size() == before)
          error(r[given[0]], "\"" + given[0] + "\": invalid action");
      }
      if (auto n = r["extract"]) rule.extract = regex_setting(n, "extract");
      if (auto n = r["retry"]) rule.retry = load_retry(n, "retry", retry_default_);
      if (errors_.size() == before) rules.push_back(std::move(rule));
    }
    return rules;
  }

  void load_gate(const YAML::Node& node, Rule& rule) {
    if (!expect_map(node, "when")) return;
    check_keys(node, {"code", "pattern"}, "when");
    auto code = required(node, "code", "when");
    auto pattern = required(node, "pattern", "when");
    if (!code || !pattern) return;
    auto t = template_setting(code, "when.code", Destination::text);
    auto p = regex_setting(pattern, "when.pattern");
    if (t && p) rule.when = Gate{std::move(*t), std::move(*p)};
  }

  void load_request(const YAML::Node& node, RequestSpec& out) {
    if (!expect_map(node, "request")) return;
    check_keys(node, {"method", "url", "headers", "body", "timeout", "auth"}, "request");
    if (auto n = node["method"]) {
      if (auto v = scalar(n, "request.method")) {
        std::string m = *v;
        std::transform(m.begin(), m.end(), m.begin(), ::toupper);
        if (std::find(std::begin(kMethods), std::end(kMethods), m) == std::end(kMethods)) {
          error(n, "\"request.method\": must be one of GET, POST, PUT, PATCH, DELETE, got \"" + *v +
                       "\"");
        }
        out.method = m;
      }
    }
    bool json_body = false, form_body = false;
    if (auto n = node["headers"]) {
      record(n, ValueKind::map);
      if (!n.IsMap()) {
        error(n, "\"request.headers\" must be a mapping of header name to value");
      } else {
        std::set<std::string> seen;
        for (auto it = n.begin(); it != n.end(); ++it) {
          std::string name = it->first.as<std::string>("");
          std::string lower = name;
          std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
          if (name.empty() ||
              name.find_first_of(" \t\r\n:()<>@,;\\\"/[]?={}") != std::string::npos) {
            error(it->first, "invalid header name \"" + name + "\"");
            continue;
          }
          if (!seen.insert(lower).second) error(it->first, "duplicate header \"" + name + "\"");
          auto value = template_setting(it->second, "request.headers." + name, Destination::header);
          if (!value) continue;
          if (lower == "content-type") {
            RenderReport report;
            std::string ct = value->render({}, report);
            std::transform(ct.begin(), ct.end(), ct.begin(), ::tolower);
            json_body = ct.find("json") != std::string::npos;
            form_body = ct.find("x-www-form-urlencoded") != std::string::npos;
          }
          out.headers.push_back({name, std::move(*value), false});
        }
      }
    }
    if (auto n = node["auth"]) load_auth(n, out);
    if (auto n = node["url"]) {
      auto raw = scalar(n, "request.url");
      if (raw && raw->rfind("response://", 0) == 0) {
        out.pseudo_response = true;
        std::vector<Template::Error> errs;
        out.url = Template::compile(std::string_view(*raw).substr(11), Destination::text,
                                    tracked_env(), errs);
        report_unset_env(n, *raw);
        for (const auto& e : errs) error(n, "\"request.url\": " + e.message, e.offset + 11);
      } else if (raw) {
        if (auto t = template_setting(n, "request.url", Destination::url)) {
          RenderReport report;
          std::string probe = t->render({}, report);
          if (!is_http_url(probe)) {
            error(n, "\"request.url\": must start with http://, https:// or response://");
          }
          out.url = std::move(*t);
        }
      }
    } else {
      error(node, "\"request\" is missing required key \"url\"");
    }
    if (auto n = node["body"]) {
      auto raw = scalar(n, "request.body");
      if (raw) {
        std::size_t first = raw->find_first_not_of(" \t\r\n");
        if (!json_body && !form_body && first != std::string::npos &&
            ((*raw)[first] == '{' || (*raw)[first] == '['))
          json_body = true;
        Destination d = json_body   ? Destination::json
                        : form_body ? Destination::form
                                    : Destination::text;
        if (auto t = template_setting(n, "request.body", d)) out.body = std::move(*t);
      }
    }
    if (auto n = node["timeout"]) {
      if (auto v = integer(n, "request.timeout", 1, 300)) out.timeout = std::chrono::seconds(*v);
    }
    for (const auto& inspector : registry_.request_inspectors())
      if (inspector->inspect(out, node, *this)) out.inspectors.push_back(inspector);
  }

  void load_auth(const YAML::Node& node, RequestSpec& out) {
    if (!expect_map(node, "request.auth")) return;
    auto type_node = required(node, "type", "request.auth");
    if (!type_node) return;
    // The types, known to the schema; an unknown one is reported below with its own wording.
    std::vector<std::string> types;
    for (const auto& kind : registry_.auth_kinds()) types.push_back(kind.type);
    types.insert(types.end(), {"basic", "bearer"});
    if (recorder_) recorder_->kind(type_node, {ValueKind::choice, 0, 0, types});
    auto type = scalar(type_node, "request.auth.type");
    if (!type) return;
    AuthReader auth(node, *type, *this, out);
    if (*type == "basic") {
      auth.check_keys({"user", "password"});
      auto user = auth.secret("user");
      auto password = auth.secret("password");
      if (user && password)
        auth.add_header("Authorization", "Basic " + base64_encode(*user + ":" + *password));
    } else if (*type == "bearer") {
      auth.check_keys({"token"});
      if (auto token = auth.secret("token")) auth.add_header("Authorization", "Bearer " + *token);
    } else {
      for (const auto& kind : registry_.auth_kinds())
        if (kind.type == *type) return kind.load(auth);
      error(type_node, "unknown auth type \"" + *type + "\"; known: " + join(types));
    }
  }

  const Registry& registry_;
  RetryPolicy retry_default_;
};

}  // namespace

RuleSet::RuleSet(std::vector<Rule> rules) : rules_(std::move(rules)) {
  for (const Rule& rule : rules_) by_event_[rule.event].push_back(&rule);
  for (auto& [event, list] : by_event_) {
    std::stable_sort(list.begin(), list.end(), [](const Rule* a, const Rule* b) {
      return std::tie(a->order, a->position) < std::tie(b->order, b->position);
    });
  }
}

const std::vector<const Rule*>& RuleSet::for_event(const std::string& event) const {
  static const std::vector<const Rule*> none;
  auto it = by_event_.find(event);
  return it == by_event_.end() ? none : it->second;
}

std::string Diagnostic::format() const {
  const char* label = severity == Severity::note      ? ": note: "
                      : severity == Severity::warning ? ": warning: "
                                                      : ": error: ";
  return location.file + ":" + std::to_string(location.line) + ":" +
         std::to_string(location.column) + label + message;
}

std::optional<std::string> process_env(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

const Registry& core_registry() {
  static const Registry none;
  return none;
}

LoadResult load_config_text(std::string_view yaml, const std::string& file,
                            const Template::EnvLookup& env, const Registry& registry,
                            UnsetEnv unset_env) {
  return Loader(file, env, registry, unset_env).run(yaml);
}

LoadResult load_config_node(const YAML::Node& root, const std::string& file,
                            const Template::EnvLookup& env, const Registry& registry,
                            KeyRecorder* recorder) {
  Loader loader(file, env, registry, UnsetEnv::warning);
  loader.set_recorder(recorder);
  return loader.run(root);
}

LoadResult load_config_file(const std::string& path, const Template::EnvLookup& env,
                            const Registry& registry, UnsetEnv unset_env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    // Built field by field: GCC 12 at -O3 reports the braced temporary as maybe-uninitialized.
    Diagnostic unreadable;
    unreadable.location.file = path;
    unreadable.message = "cannot read configuration file";
    result.errors.push_back(std::move(unreadable));
    return result;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return load_config_text(buffer.str(), path, env, registry, unset_env);
}

}  // namespace callbridge::rules
