#include "rules/config_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace callbridge::rules {

namespace {

std::string join_names(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

ConfigReader::ConfigReader(std::string file, const Template::EnvLookup& env, UnsetEnv unset_env)
    : unset_env_(unset_env),
      file_(std::move(file)),
      env_(env),
      secrets_(std::make_shared<SecretSet>()) {}

SourceLocation ConfigReader::where(const YAML::Node& node, std::size_t offset) const {
  YAML::Mark mark = node.Mark();
  int column = mark.column + 1;
  // Offsets inside single-line scalars point at the character; quoted scalars start one later.
  if (node.IsScalar() && node.Scalar().find('\n') == std::string::npos) {
    column += static_cast<int>(offset) + (node.Tag() == "!" ? 1 : 0);
  }
  return {file_, mark.line + 1, column};
}
void ConfigReader::error(const YAML::Node& node, const std::string& message, std::size_t offset) {
  errors_.push_back({where(node, offset), secrets_->redact(message)});
}

void ConfigReader::note(const YAML::Node& node, const std::string& message, std::size_t offset,
                        Severity severity) {
  notes_.push_back({where_in_text(node, offset), secrets_->redact(message), severity});
}

SourceLocation ConfigReader::where_in_text(const YAML::Node& node, std::size_t offset) const {
  const std::string& text = node.Scalar();
  if (!node.IsScalar() || text.find('\n') == std::string::npos) return where(node, offset);
  YAML::Mark mark = node.Mark();
  std::size_t pos = static_cast<std::size_t>(std::max(0, mark.pos));
  // Only a literal block scalar (`|`) keeps its lines as written; others keep the node's place.
  if (pos >= source_.size() || source_[pos] != '|') return where(node);
  std::size_t first = source_.find('\n', pos);
  if (first == std::string_view::npos) return where(node);
  std::size_t indent = 0;
  for (std::size_t p = first + 1; p < source_.size(); ++p) {
    std::size_t spaces = source_.find_first_not_of(' ', p);
    if (spaces == std::string_view::npos) break;
    if (source_[spaces] != '\n') {
      indent = spaces - p;
      break;
    }
    p = spaces;
  }
  offset = std::min(offset, text.size());
  std::size_t lines =
      static_cast<std::size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
  std::size_t line_start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  line_start = line_start == std::string::npos || offset == 0 ? 0 : line_start + 1;
  return {file_, mark.line + 2 + static_cast<int>(lines),
          static_cast<int>(indent + (offset - line_start)) + 1};
}

// Reports unknown and duplicate keys; returns the keys present.
std::set<std::string> ConfigReader::check_keys(const YAML::Node& map,
                                               const std::vector<std::string>& allowed,
                                               const std::string& context) {
  if (!map.IsDefined()) return {};
  if (recorder_) recorder_->keys(map, allowed);
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    std::string key = it->first.as<std::string>("");
    std::string shown = context.empty() ? key : context + "." + key;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      error(it->first, "unknown key \"" + shown + "\"; known: " + join_names(allowed));
    } else if (!seen.insert(key).second) {
      error(it->first, "duplicate key \"" + shown + "\"");
    }
  }
  return seen;
}

bool ConfigReader::expect_map(const YAML::Node& node, const std::string& what) {
  if (!node.IsDefined()) return false;  // a missing key, reported by required()
  record(node, ValueKind::map);
  if (node.IsMap()) return true;
  error(node, "\"" + what + "\" must be a mapping");
  return false;
}

std::optional<std::string> ConfigReader::scalar(const YAML::Node& node, const std::string& what) {
  // A required key that is missing (required() reported it) reads as nothing.
  if (!node.IsDefined()) return std::nullopt;
  record(node, ValueKind::scalar);
  if (!node.IsScalar()) {
    error(node, "\"" + what + "\" must be a single value");
    return std::nullopt;
  }
  return node.Scalar();
}

// A plain string setting; `${NAME}` expands from the environment and is a secret.
std::optional<std::string> ConfigReader::string_setting(const YAML::Node& node,
                                                        const std::string& what) {
  record(node, ValueKind::string);
  auto raw = scalar(node, what);
  if (!raw) return std::nullopt;
  std::vector<Template::Error> errs;
  Template t = Template::compile(*raw, Destination::text, tracked_env(), errs);
  report_unset_env(node, *raw);
  for (const auto& e : errs) error(node, "\"" + what + "\": " + e.message, e.offset);
  if (!errs.empty()) return std::nullopt;
  // Placeholders have no meaning here; render them as written.
  RenderReport report;
  Variables none;
  std::string value = t.render(none, report);
  if (!report.undefined.empty()) value = *raw;
  return value;
}

std::optional<long long> ConfigReader::integer(const YAML::Node& node, const std::string& what,
                                               long long min, long long max) {
  if (recorder_) recorder_->kind(node, {ValueKind::integer, min, max, {}});
  auto raw = scalar(node, what);
  if (!raw) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(raw->c_str(), &end, 10);
  if (raw->empty() || *end != '\0' || errno != 0) {
    error(node, "\"" + what + "\": must be an integer, got \"" + *raw + "\"");
    return std::nullopt;
  }
  if (v < min || v > max) {
    error(node, "\"" + what + "\": must be between " + std::to_string(min) + " and " +
                    std::to_string(max) + ", got " + std::to_string(v));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> ConfigReader::boolean(const YAML::Node& node, const std::string& what) {
  record(node, ValueKind::boolean);
  auto raw = scalar(node, what);
  if (!raw) return std::nullopt;
  if (*raw == "true") return true;
  if (*raw == "false") return false;
  error(node, "\"" + what + "\": must be true or false, got \"" + *raw + "\"");
  return std::nullopt;
}

Template::EnvLookup ConfigReader::tracked_env() {
  return [this](std::string_view name) -> std::optional<std::string> {
    auto value = env_(name);
    if (!value && unset_env_ == UnsetEnv::warning) {
      // Long enough for settings with a minimum length (server tokens); never a real secret.
      unset_.emplace_back(name);
      return "unset-" + std::string(name) + "-placeholder";
    }
    if (value) secrets_->add(*value);
    return value;
  };
}

void ConfigReader::report_unset_env(const YAML::Node& node, std::string_view raw) {
  std::size_t from = 0;
  for (const std::string& name : unset_) {
    std::string reference = "${" + name + "}";
    std::size_t at = raw.find(reference, from);
    if (at == std::string_view::npos) at = raw.find(reference);
    if (at != std::string_view::npos) from = at + reference.size();
    note(node, "environment variable " + reference + " is not set",
         at == std::string_view::npos ? 0 : at, Severity::warning);
  }
  unset_.clear();
}

std::optional<Template> ConfigReader::template_setting(const YAML::Node& node,
                                                       const std::string& what,
                                                       Destination destination) {
  record(node, ValueKind::template_text);
  auto raw = scalar(node, what);
  if (!raw) return std::nullopt;
  std::vector<Template::Error> errs;
  Template t = Template::compile(*raw, destination, tracked_env(), errs);
  report_unset_env(node, *raw);
  for (const auto& e : errs) error(node, "\"" + what + "\": " + e.message, e.offset);
  if (!errs.empty()) return std::nullopt;
  return t;
}

std::optional<Regex> ConfigReader::regex_setting(const YAML::Node& node, const std::string& what) {
  record(node, ValueKind::regex);
  auto raw = scalar(node, what);
  if (!raw) return std::nullopt;
  RegexError err;
  auto regex = Regex::compile(*raw, err);
  if (!regex) {
    error(node,
          "\"" + what + "\": bad pattern at offset " + std::to_string(err.offset) + ": " +
              err.message,
          err.offset);
  }
  return regex;
}

bool ConfigReader::expect_list(const YAML::Node& node, const std::string& what) {
  if (!node.IsDefined()) return false;  // a missing key, reported by required()
  record(node, ValueKind::list);
  if (node.IsSequence()) return true;
  error(node, "\"" + what + "\" must be a list");
  return false;
}

// A missing key gives an invalid node; the readers take it as already reported and return
// nullopt (or false) without a second error, instead of throwing from yaml-cpp.
YAML::Node ConfigReader::required(const YAML::Node& map, const std::string& key,
                                  const std::string& context) {
  if (recorder_) recorder_->required(map, key);
  YAML::Node n = map[key];
  if (!n) error(map, "\"" + context + "\" is missing required key \"" + key + "\"");
  return n;
}

std::optional<std::string> ConfigReader::secret_setting(const YAML::Node& node,
                                                        const std::string& what) {
  std::optional<std::string> value;
  if (!node.IsDefined()) return std::nullopt;  // missing and required: already reported
  record(node, ValueKind::secret);
  if (node.IsMap()) {
    check_keys(node, {"file"}, what);
    auto path_node = node["file"];
    if (!path_node) {
      error(node, "\"" + what + "\" must be a value, ${ENV}, or {file: PATH}");
      return std::nullopt;
    }
    auto path = string_setting(path_node, what + ".file");
    if (!path) return std::nullopt;
    std::ifstream in(*path, std::ios::binary);
    if (!in) {
      error(path_node, "\"" + what + "\": cannot read " + *path);
      return std::nullopt;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    value = buffer.str();
    while (!value->empty() && (value->back() == '\n' || value->back() == '\r')) value->pop_back();
  } else {
    value = string_setting(node, what);
  }
  if (value) secrets_->add(*value);
  return value;
}

std::optional<std::string> ConfigReader::choice(const YAML::Node& node, const std::string& what,
                                                const std::vector<std::string>& allowed) {
  if (recorder_) recorder_->kind(node, {ValueKind::choice, 0, 0, allowed});
  auto v = scalar(node, what);
  if (!v) return std::nullopt;
  if (std::find(allowed.begin(), allowed.end(), *v) != allowed.end()) return v;
  error(node, "\"" + what + "\": unknown value \"" + *v + "\"; known: " + join_names(allowed));
  return std::nullopt;
}

bool is_http_url(std::string_view url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

}  // namespace callbridge::rules
