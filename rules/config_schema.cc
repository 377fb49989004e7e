#include "rules/config_schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "rules/config_reader.h"

namespace callbridge::rules {

namespace {

// What the loader asked of the node at a path (`rules[].request.url`: `[]` is any list item).
struct PathInfo {
  bool known = false;
  ValueKind kind;
  std::vector<std::string> keys;  // a mapping's allowed keys, in the loader's order
  bool has_keys = false;
  std::vector<std::string> required;     // keys asked for by name, probed like allowed ones
  std::optional<ValueKind> scalar_form;  // what a plain value there is read as, if one is taken
};

int specificity(ValueKind::Type type) {
  switch (type) {
    case ValueKind::scalar:
      return 0;
    case ValueKind::string:
      return 1;
    case ValueKind::template_text:
    case ValueKind::regex:
      return 2;
    case ValueKind::integer:
    case ValueKind::boolean:
    case ValueKind::choice:
      return 3;
    case ValueKind::secret:
      return 4;
    case ValueKind::list:
    case ValueKind::map:
      return 5;
  }
  return 0;
}

// A mapping whose keys are names the user chooses (kintone.connections, request.headers) is
// probed with this key, and its entries described at `PATH.*`.
constexpr const char* kAnyName = "__any_name__";

std::string child_path(const std::string& parent, const std::string& key) {
  std::string segment = key == kAnyName ? "*" : key;
  return parent.empty() ? segment : parent + "." + segment;
}

// Records what the loader asks, by the path of each node of the probe document.
class ProbeRecorder : public KeyRecorder {
 public:
  // `scalar_target`: the path holding a plain value in this probe; what the loader reads there
  // is recorded as that path's scalar form.
  // `list_target`: the path holding a list in this probe; what the loader reads of the list
  // itself there is not recorded (the kind of the path comes from the other probes).
  ProbeRecorder(std::map<std::string, PathInfo>& infos, std::optional<std::string> scalar_target,
                std::optional<std::string> list_target)
      : infos_(infos),
        scalar_target_(std::move(scalar_target)),
        list_target_(std::move(list_target)) {}

  void index(const YAML::Node& node, const std::string& path) {
    nodes_.emplace_back(node, path);
    if (node.IsMap()) {
      for (auto it = node.begin(); it != node.end(); ++it)
        index(it->second, child_path(path, it->first.Scalar()));
    } else if (node.IsSequence()) {
      for (const auto& item : node) index(item, path + "[]");
    }
  }

  void keys(const YAML::Node& map, const std::vector<std::string>& allowed) override {
    auto path = path_of(map);
    if (!path) return;
    PathInfo& info = infos_[*path];
    info.has_keys = true;
    for (const auto& key : allowed)
      if (std::find(info.keys.begin(), info.keys.end(), key) == info.keys.end())
        info.keys.push_back(key);
  }

  void required(const YAML::Node& map, const std::string& key) override {
    auto path = path_of(map);
    if (!path) return;
    auto& keys = infos_[*path].required;
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }

  void kind(const YAML::Node& node, const ValueKind& kind) override {
    auto path = path_of(node);
    if (!path) return;
    PathInfo& info = infos_[*path];
    if (list_target_ && *path == *list_target_) return;  // only its items are of interest
    if (scalar_target_ && *path == *scalar_target_) {
      if (kind.type == ValueKind::map || kind.type == ValueKind::list) return;
      if (!info.scalar_form || specificity(kind.type) > specificity(info.scalar_form->type))
        info.scalar_form = kind;
      return;
    }
    if (!info.known || specificity(kind.type) > specificity(info.kind.type)) {
      info.kind = kind;
      info.known = true;
    } else if (kind.type == ValueKind::choice && info.kind.type == ValueKind::choice) {
      for (const auto& v : kind.values)
        if (std::find(info.kind.values.begin(), info.kind.values.end(), v) ==
            info.kind.values.end())
          info.kind.values.push_back(v);
    }
  }

 private:
  std::optional<std::string> path_of(const YAML::Node& node) const {
    if (!node.IsDefined()) return std::nullopt;  // a key the probe does not hold
    for (const auto& [n, path] : nodes_)
      if (n.is(node)) return path;
    return std::nullopt;
  }

  std::map<std::string, PathInfo>& infos_;
  std::optional<std::string> scalar_target_;
  std::optional<std::string> list_target_;
  std::vector<std::pair<YAML::Node, std::string>> nodes_;
};

// A document holding `value` at `segments`, with a fresh mapping or one-item list on the way.
YAML::Node document_with(const std::vector<std::string>& segments, std::size_t i,
                         const YAML::Node& value) {
  if (i == segments.size()) return value;
  if (segments[i] == "[]") {
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(document_with(segments, i + 1, value));
    return list;
  }
  YAML::Node map(YAML::NodeType::Map);
  map[segments[i] == "*" ? kAnyName : segments[i]] = document_with(segments, i + 1, value);
  return map;
}

// A key that only a choice beside it allows (`script` with `type: simulate`) is probed with that
// choice: `sibling` is the choice's key and value.
using Sibling = std::optional<std::pair<std::string, std::string>>;

void probe(const Registry& registry, std::map<std::string, PathInfo>& infos,
           const std::string& path, const YAML::Node& value, const Sibling& sibling = {}) {
  YAML::Node root;
  auto dot = path.rfind('.');
  if (sibling && dot != std::string::npos) {
    YAML::Node parent(YAML::NodeType::Map);
    parent[sibling->first] = sibling->second;
    parent[path.substr(dot + 1)] = value;
    root = document_with(split_path(path.substr(0, dot)), 0, parent);
  } else {
    root = document_with(split_path(path), 0, value);
  }
  ProbeRecorder recorder(infos, value.IsScalar() ? std::optional<std::string>(path) : std::nullopt,
                         value.IsSequence() ? std::optional<std::string>(path) : std::nullopt);
  recorder.index(root, "");
  static const Template::EnvLookup no_env = [](std::string_view) {
    return std::optional<std::string>{};
  };
  load_config_node(root, "schema", no_env, registry, &recorder);
}

// Walks the loader: an empty mapping at each path tells what it is (the loader checks a
// mapping's keys, expects a list, or reads a value of some kind); lists are probed with one
// item; a choice that selects keys (`request.auth.type`) is probed with each of its values.
std::map<std::string, PathInfo> discover(const Registry& registry) {
  std::map<std::string, PathInfo> infos;
  std::set<std::string> probed{""};
  std::deque<std::string> queue;
  probe(registry, infos, "", YAML::Node(YAML::NodeType::Map));
  std::set<std::string> variants_done;
  std::map<std::string, std::pair<std::string, std::string>> sibling_of;
  auto expand = [&] {
    for (const auto& [path, info] : infos) {
      if (info.has_keys)
        for (const auto& key : info.keys)
          if (probed.insert(child_path(path, key)).second) queue.push_back(child_path(path, key));
      for (const auto& key : info.required)
        if (probed.insert(child_path(path, key)).second) queue.push_back(child_path(path, key));
      if (info.known && info.kind.type == ValueKind::list && probed.insert(path + "[]").second)
        queue.push_back(path + "[]");
      if (info.known && info.kind.type == ValueKind::map && !info.has_keys &&
          probed.insert(child_path(path, kAnyName)).second)
        queue.push_back(child_path(path, kAnyName));
    }
  };
  expand();
  while (!queue.empty()) {
    std::string path = queue.front();
    queue.pop_front();
    Sibling sibling;
    if (auto s = sibling_of.find(path); s != sibling_of.end()) sibling = s->second;
    probe(registry, infos, path, YAML::Node(YAML::NodeType::Map), sibling);
    probe(registry, infos, path, YAML::Node("0"), sibling);
    YAML::Node list(YAML::NodeType::Sequence);  // some mappings may also be given as a list
    list.push_back(YAML::Node(YAML::NodeType::Map));
    probe(registry, infos, path, list, sibling);
    const PathInfo& info = infos[path];
    auto dot = path.rfind('.');
    if (info.known && info.kind.type == ValueKind::choice && dot != std::string::npos &&
        variants_done.insert(path).second) {
      std::string parent = path.substr(0, dot), key = path.substr(dot + 1);
      for (const auto& value : std::vector<std::string>(info.kind.values)) {
        YAML::Node map(YAML::NodeType::Map);
        map[key] = value;
        std::map<std::string, PathInfo> with_value = infos;
        with_value[parent].keys.clear();
        with_value[parent].required.clear();
        probe(registry, with_value, parent, map);
        for (const auto& list : {with_value[parent].keys, with_value[parent].required})
          for (const auto& k : list)
            if (k != key) sibling_of.emplace(child_path(parent, k), std::make_pair(key, value));
        probe(registry, infos, parent, map);
      }
    }
    expand();
  }
  return infos;
}

// Short descriptions of the core keys, with the BIZTEL call-action field's Japanese label where
// one exists; connectors add theirs through the registry. Keys without an entry are described by
// their kind and bounds.
using Texts = std::map<std::string, std::string>;

Texts descriptions(const Registry& registry) {
  std::map<std::string, std::string> table = {
      {"server", "The HTTP intake: address, tokens, connection limits."},
      {"server.listen", "HOST:PORT the bridge listens on (port 0: any free port)."},
      {"server.tokens", "Bearer tokens the intake accepts, at least 16 characters each."},
      {"server.threads", "HTTP worker threads."},
      {"server.max_body_bytes", "Largest request body accepted."},
      {"server.drain_seconds",
       "On SIGTERM, seconds /readyz answers 503 draining while still serving (0: stop at once)."},
      {"storage", "The journal of events and actions: an SQLite file or a PostgreSQL database."},
      {"storage.path", "Journal file; under systemd /var/lib/callbridge/callbridge.db."},
      {"storage.postgres",
       "postgresql://USER:${PGPASSWORD}@HOST/DB: the journal in PostgreSQL instead of a file."},
      {"storage.fsync", "Flush each commit to disk before acknowledging."},
      {"storage.retention_days", "Days of call history kept."},
      {"storage.max_batch", "Journal writes committed in one transaction at most."},
      {"cluster", "Several nodes on one PostgreSQL journal: this node's name, lease length."},
      {"cluster.node_id",
       "This node's name as a lease owner (default: <hostname>-<pid>-<random> per start)."},
      {"cluster.lease_seconds",
       "How long a node holds a call or singleton without renewing; takeover after a crash."},
      {"http", "The outbound HTTP client used by rules and connectors."},
      {"http.verify_tls", "Verify servers' TLS certificates."},
      {"http.ca_file", "CA bundle for verifying servers."},
      {"http.max_response_bytes", "Largest response body read."},
      {"http.max_idle_per_origin",
       "Kept-alive connections per scheme://host:port (default: as many as dispatcher.workers)."},
      {"dispatcher", "Workers that run rules on accepted events."},
      {"dispatcher.workers",
       "Actions running at once (default 64); each waits for its CRM, so about the actions/s "
       "wanted times the CRM's latency."},
      {"dispatcher.queue_capacity", "Accepted events waiting; beyond it the intake answers busy."},
      {"dispatcher.retry", "Default retry policy of every rule."},
      {"dispatcher.shutdown_grace_ms", "How long a stop waits for running actions."},
      {"rules", "Call actions: each runs on one event, in `order`."},
      {"rules[]", "One call action (コールアクション)."},
      {"rules[].name", "(name) Unique name of the rule."},
      {"rules[].event", "イベント種別: inbound (着信), answered (応答), hangup (切断)..."},
      {"rules[].order", "実行順: ascending, ties in file order."},
      {"rules[].when", "判定: run only when `code` matches `pattern`."},
      {"rules[].when.code", "判定用コード: template, e.g. {ISANSWERED}."},
      {"rules[].when.pattern", "判定用パターン: /pattern/flags."},
      {"rules[].request", "The HTTP request of the call action."},
      {"rules[].request.url", "URL: http://, https:// or response://TEXT."},
      {"rules[].request.method", "メソッド: GET, POST, PUT, PATCH, DELETE."},
      {"rules[].request.headers", "リクエストヘッダ: header name to template."},
      {"rules[].request.body", "リクエストボディ: template."},
      {"rules[].request.timeout", "タイムアウト判定: whole seconds."},
      {"rules[].request.auth", "Computed credentials: basic, bearer, or a connector's kind."},
      {"rules[].request.auth.type", "Which credentials are sent."},
      {"rules[].extract", "変数抽出パターン: /pattern/flags with named groups."},
      {"rules[].memo", "メモ: free text, ignored."},
      {"rules[].retry", "Retry policy of this rule (default: dispatcher.retry)."},
  };
  for (const auto& [path, text] : registry.descriptions()) table[path] = text;
  return table;
}

std::string describe_kind(const PathInfo& info) {
  if (!info.known) return "Checked by `callbridge validate`; see the connector's documentation.";
  switch (info.kind.type) {
    case ValueKind::integer:
      return "Integer from " + std::to_string(info.kind.min) + " to " +
             std::to_string(info.kind.max) + ".";
    case ValueKind::boolean:
      return "true or false.";
    case ValueKind::choice:
      return "One of the listed values.";
    case ValueKind::template_text:
      return "Template: {VARIABLE} placeholders are filled per call.";
    case ValueKind::regex:
      return "Regular expression, /pattern/flags.";
    case ValueKind::secret:
      return "Secret: a value, ${ENV}, or {file: PATH}.";
    case ValueKind::list:
      return "A list.";
    case ValueKind::map:
      return "A mapping.";
    default:
      return "Text; ${ENV} expands from the environment.";
  }
}

nlohmann::ordered_json scalar_values() {
  return {{"type", nlohmann::ordered_json::array({"string", "number"})}};
}

nlohmann::ordered_json schema_of_kind(const std::map<std::string, PathInfo>& infos,
                                      const Texts& texts, const std::string& path,
                                      const PathInfo& info);

nlohmann::ordered_json schema_of(const std::map<std::string, PathInfo>& infos, const Texts& texts,
                                 const std::string& path) {
  nlohmann::ordered_json out;
  auto it = infos.find(path);
  PathInfo info = it == infos.end() ? PathInfo{} : it->second;
  auto d = texts.find(path);
  std::string text = d != texts.end()               ? d->second
                     : !info.known && info.has_keys ? "A mapping."
                                                    : describe_kind(info);
  if (!text.empty()) out["description"] = text;
  if (info.has_keys &&
      (!info.known || info.kind.type == ValueKind::map || info.kind.type == ValueKind::scalar)) {
    nlohmann::ordered_json object;
    object["type"] = "object";
    nlohmann::ordered_json properties = nlohmann::ordered_json::object();
    for (const auto& key : info.keys)
      properties[key] = schema_of(infos, texts, child_path(path, key));
    object["properties"] = properties;
    object["additionalProperties"] = false;
    // A name or the inline mapping (a call flow), a mapping or a list of them (delivery_id).
    nlohmann::ordered_json forms = nlohmann::ordered_json::array();
    if (info.scalar_form) {
      PathInfo plain;
      plain.known = true;
      plain.kind = *info.scalar_form;
      forms.push_back(schema_of_kind(infos, texts, path, plain));
    }
    forms.push_back(object);
    if (auto item = infos.find(path + "[]");
        item != infos.end() && (item->second.has_keys || item->second.known))
      forms.push_back({{"type", "array"}, {"items", schema_of(infos, texts, path + "[]")}});
    if (forms.size() == 1)
      out.update(object);
    else
      out["anyOf"] = forms;
    return out;
  }
  if (!info.known && info.scalar_form) {
    info.known = true;
    info.kind = *info.scalar_form;
  }
  out.update(schema_of_kind(infos, texts, path, info));
  return out;
}

nlohmann::ordered_json schema_of_kind(const std::map<std::string, PathInfo>& infos,
                                      const Texts& texts, const std::string& path,
                                      const PathInfo& info) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (!info.known) return out;  // read by the loader without the reader's typed functions
  switch (info.kind.type) {
    case ValueKind::integer:
      out["type"] = "integer";
      out["minimum"] = info.kind.min;
      out["maximum"] = info.kind.max;
      break;
    case ValueKind::boolean:
      out["type"] = "boolean";
      break;
    case ValueKind::choice: {
      nlohmann::ordered_json values = nlohmann::ordered_json::array();
      for (const auto& v : info.kind.values) {
        values.push_back(v);
        // YAML reads an unquoted 429 as a number; the loader takes it as the text.
        if (!v.empty() && v.find_first_not_of("0123456789") == std::string::npos)
          values.push_back(std::stoll(v));
      }
      out["enum"] = values;
      break;
    }
    case ValueKind::secret:
      out["oneOf"] = {scalar_values(),
                      {{"type", "object"},
                       {"properties", {{"file", {{"type", "string"}}}}},
                       {"required", {"file"}},
                       {"additionalProperties", false}}};
      break;
    case ValueKind::list:
      out["type"] = "array";
      out["items"] = schema_of(infos, texts, path + "[]");
      break;
    case ValueKind::map:
      out["type"] = "object";
      if (auto any = infos.find(path + ".*");
          any != infos.end() && (any->second.known || any->second.has_keys))
        out["additionalProperties"] = schema_of(infos, texts, path + ".*");
      break;
    default:
      out.update(scalar_values());
      break;
  }
  return out;
}

}  // namespace

std::vector<std::string> described_paths(const Registry& registry) {
  std::vector<std::string> out;
  for (const auto& [path, text] : descriptions(registry)) out.push_back(path);
  return out;
}

nlohmann::ordered_json config_schema(const Registry& registry) {
  auto infos = discover(registry);
  Texts texts = descriptions(registry);
  nlohmann::ordered_json schema;
  schema["$schema"] = "https://json-schema.org/draft/2020-12/schema";
  schema["$id"] = "file:///usr/share/callbridge/callbridge.schema.json";
  schema["title"] = "callbridge configuration";
  nlohmann::ordered_json body = schema_of(infos, texts, "");
  body["description"] =
      "callbridge.yaml: server, storage, dispatcher, http, rules and the "
      "connectors' sections.";
  schema.update(body);
  schema["type"] = nlohmann::ordered_json::array({"object", "null"});
  return schema;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::string part;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path.compare(i, 2, "[]") == 0) {
      if (!part.empty()) out.push_back(part);
      part.clear();
      out.push_back("[]");
      ++i;
    } else if (path[i] == '.') {
      if (!part.empty()) out.push_back(part);
      part.clear();
    } else {
      part += path[i];
    }
  }
  if (!part.empty()) out.push_back(part);
  return out;
}

}  // namespace callbridge::rules
