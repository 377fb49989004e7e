// Reading YAML strictly: every error collected with FILE:LINE:COL, never thrown. The loader uses
// it for the core keys and hands it to connectors for theirs, so all errors share one report.
#pragma once

#include <yaml-cpp/yaml.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "rules/config.h"

namespace callbridge::rules {

class Registry;

// What the reader is asked about each node: the keys a mapping allows and the kind of each value.
// The JSON Schema of the configuration file (rules/config_schema.h) is built from these records,
// so a key added through the reader appears in the schema without anyone editing a list.
struct ValueKind {
  enum Type { scalar, string, template_text, regex, integer, boolean, choice, secret, list, map };
  Type type = scalar;
  long long min = 0, max = 0;       // integer
  std::vector<std::string> values;  // choice
};

class KeyRecorder {
 public:
  virtual ~KeyRecorder() = default;
  virtual void keys(const YAML::Node& map, const std::vector<std::string>& allowed) = 0;
  virtual void kind(const YAML::Node& node, const ValueKind& kind) = 0;
  // `key` is required in `map` (read before, or instead of, the mapping's other keys).
  virtual void required(const YAML::Node& map, const std::string& key) = 0;
};

// True when `url` starts with http:// or https://, the schemes the outbound client speaks.
bool is_http_url(std::string_view url);

class ConfigReader {
 public:
  ConfigReader(std::string file, const Template::EnvLookup& env,
               UnsetEnv unset_env = UnsetEnv::error);
  virtual ~ConfigReader() = default;

  const std::string& file() const { return file_; }
  SourceLocation where(const YAML::Node& node, std::size_t offset = 0) const;
  void error(const YAML::Node& node, const std::string& message, std::size_t offset = 0);
  // A note or warning; `offset` is a byte offset into the scalar's text, which may span lines.
  void note(const YAML::Node& node, const std::string& message, std::size_t offset = 0,
            Severity severity = Severity::note);
  std::size_t error_count() const { return errors_.size(); }

  // Reports unknown and duplicate keys (listing the allowed ones); returns the keys present.
  std::set<std::string> check_keys(const YAML::Node& map, const std::vector<std::string>& allowed,
                                   const std::string& context = "");
  bool expect_map(const YAML::Node& node, const std::string& what);
  bool expect_list(const YAML::Node& node, const std::string& what);
  // Reports `key` missing from `map`; returns the node (invalid when missing).
  YAML::Node required(const YAML::Node& map, const std::string& key, const std::string& context);

  std::optional<std::string> scalar(const YAML::Node& node, const std::string& what);
  // A plain string; `${NAME}` expands from the environment (and is a secret).
  std::optional<std::string> string_setting(const YAML::Node& node, const std::string& what);
  // A string that is always a secret (passwords, client secrets), from `${ENV}` or literal;
  // `file:` form `{file: PATH}` reads it from a file (trailing newline dropped).
  std::optional<std::string> secret_setting(const YAML::Node& node, const std::string& what);
  std::optional<long long> integer(const YAML::Node& node, const std::string& what, long long min,
                                   long long max);
  std::optional<bool> boolean(const YAML::Node& node, const std::string& what);
  std::optional<Template> template_setting(const YAML::Node& node, const std::string& what,
                                           Destination destination);
  std::optional<Regex> regex_setting(const YAML::Node& node, const std::string& what);
  // One of `allowed`; the error lists them.
  std::optional<std::string> choice(const YAML::Node& node, const std::string& what,
                                    const std::vector<std::string>& allowed);

  // Sections already loaded (sections load before rules, in registry order).
  template <class T>
  std::shared_ptr<const T> section(std::string_view key) const {
    auto it = sections_.find(key);
    return it == sections_.end() ? nullptr : std::dynamic_pointer_cast<const T>(it->second);
  }
  SecretSet& secrets() { return *secrets_; }
  Template::EnvLookup tracked_env();  // env lookups that register the values as secrets
  // Reports the unset `${NAME}`s that the lookups since the last call met (UnsetEnv::warning);
  // `raw` is the scalar's text.
  void report_unset_env(const YAML::Node& node, std::string_view raw);
  void set_recorder(KeyRecorder* recorder) { recorder_ = recorder; }
  // Tells the schema recorder, if any, what kind of value `node` holds.
  void record(const YAML::Node& node, ValueKind::Type type) {
    if (recorder_) recorder_->kind(node, {type, 0, 0, {}});
  }

 protected:
  // `offset` into a scalar that may span lines (block scalars need the source text).
  SourceLocation where_in_text(const YAML::Node& node, std::size_t offset) const;

  std::string_view source_;  // the whole file, when known
  UnsetEnv unset_env_ = UnsetEnv::error;
  std::vector<std::string> unset_;  // met by tracked_env() and not reported yet
  std::vector<Diagnostic> notes_;
  std::string file_;
  const Template::EnvLookup& env_;
  std::shared_ptr<SecretSet> secrets_;
  std::vector<Diagnostic> errors_;
  std::map<std::string, std::shared_ptr<const Section>, std::less<>> sections_;
  KeyRecorder* recorder_ = nullptr;
};

// Loads an already parsed document with `recorder` told of every key and value it checks
// (rules/config_schema.cc probes the loader with it).
LoadResult load_config_node(const YAML::Node& root, const std::string& file,
                            const Template::EnvLookup& env, const Registry& registry,
                            KeyRecorder* recorder);

}  // namespace callbridge::rules
