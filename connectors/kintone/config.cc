#include "connectors/kintone/config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <set>

#include "connectors/kintone/action.h"
#include "connectors/kintone/phone.h"
#include "rules/config_reader.h"

namespace callbridge::kintone {

namespace {

bool valid_connection_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  return true;
}

std::optional<std::vector<std::string>> field_list(const YAML::Node& node, const std::string& what,
                                                   rules::ConfigReader& reader) {
  std::vector<std::string> out;
  if (node.IsScalar()) {
    auto v = reader.string_setting(node, what);
    if (!v) return std::nullopt;
    out.push_back(*v);
  } else if (reader.expect_list(node, what)) {
    for (const auto& item : node) {
      auto v = reader.string_setting(item, what);
      if (!v) return std::nullopt;
      out.push_back(*v);
    }
  } else {
    return std::nullopt;
  }
  for (const auto& f : out) {
    if (!valid_field_code(f)) {
      reader.error(node, "\"" + what + "\": \"" + f + "\" is not a kintone field code");
      return std::nullopt;
    }
  }
  return out;
}

std::optional<std::string> field_code(const YAML::Node& node, const std::string& what,
                                      rules::ConfigReader& reader) {
  auto v = reader.string_setting(node, what);
  if (!v) return std::nullopt;
  if (!valid_field_code(*v)) {
    reader.error(node, "\"" + what + "\": \"" + *v + "\" is not a kintone field code");
    return std::nullopt;
  }
  return v;
}

std::optional<ConnectionSpec> load_connection(const std::string& name, const YAML::Node& node,
                                              rules::ConfigReader& reader) {
  const std::string ctx = "kintone.connections." + name;
  if (!reader.expect_map(node, ctx)) return std::nullopt;
  reader.check_keys(
      node,
      {"url", "guest_space", "api_token", "api_tokens", "login", "password", "basic_auth", "oauth",
       "timeout", "max_concurrency", "retry", "max_get_url_bytes", "daily_request_limit"},
      ctx);
  std::size_t before = reader.error_count();
  ConnectionSpec spec;
  Connection& c = spec.connection;
  c.name = name;
  if (auto url = reader.required(node, "url", ctx)) {
    if (auto v = reader.string_setting(url, ctx + ".url")) {
      if (!rules::is_http_url(*v))
        reader.error(
            url, "\"" + ctx + ".url\": must start with https:// (or http://), got \"" + *v + "\"");
      else if (v->find("/k/v1") != std::string::npos)
        reader.error(url, "\"" + ctx +
                              ".url\": the domain only (https://example.cybozu.com), without "
                              "/k/v1/...");
      c.base_url = *v;
    }
  }
  if (auto n = node["guest_space"])
    if (auto v = reader.integer(n, ctx + ".guest_space", 1, 1000000000))
      c.guest_space = static_cast<int>(*v);
  if (auto n = node["api_token"])
    if (auto v = reader.secret_setting(n, ctx + ".api_token")) c.auth.api_tokens.push_back(*v);
  if (auto n = node["api_tokens"]) {
    if (reader.expect_list(n, ctx + ".api_tokens")) {
      for (const auto& t : n)
        if (auto v = reader.secret_setting(t, ctx + ".api_tokens")) c.auth.api_tokens.push_back(*v);
      if (c.auth.api_tokens.size() > 9)
        reader.error(n, "\"" + ctx + ".api_tokens\": kintone accepts at most 9 tokens, got " +
                            std::to_string(c.auth.api_tokens.size()));
    }
  }
  for (const auto& token : c.auth.api_tokens)
    if (token.find(',') != std::string::npos || token.empty())
      reader.error(node, "\"" + ctx + "\": an API token cannot be empty or contain a comma");
  bool has_login = static_cast<bool>(node["login"]),
       has_password = static_cast<bool>(node["password"]);
  if (has_login != has_password)
    reader.error(node, "\"" + ctx + "\": login and password go together");
  if (has_login) {
    if (auto v = reader.string_setting(node["login"], ctx + ".login")) c.auth.login = *v;
    if (auto v = reader.secret_setting(node["password"], ctx + ".password")) c.auth.password = *v;
  }
  if (auto n = node["basic_auth"]) {
    if (reader.expect_map(n, ctx + ".basic_auth")) {
      reader.check_keys(n, {"user", "password"}, ctx + ".basic_auth");
      if (auto u = reader.required(n, "user", ctx + ".basic_auth"))
        if (auto v = reader.string_setting(u, ctx + ".basic_auth.user")) c.auth.basic_user = *v;
      if (auto p = reader.required(n, "password", ctx + ".basic_auth"))
        if (auto v = reader.secret_setting(p, ctx + ".basic_auth.password"))
          c.auth.basic_password = *v;
    }
  }
  if (auto n = node["oauth"]) {
    if (reader.expect_map(n, ctx + ".oauth")) {
      reader.check_keys(
          n,
          {"client_id", "client_secret", "redirect_uri", "scope", "authorization_url", "token_url"},
          ctx + ".oauth");
      OAuthSettings o;
      if (auto x = reader.required(n, "client_id", ctx + ".oauth"))
        if (auto v = reader.string_setting(x, ctx + ".oauth.client_id")) o.client_id = *v;
      if (auto x = reader.required(n, "client_secret", ctx + ".oauth"))
        if (auto v = reader.secret_setting(x, ctx + ".oauth.client_secret")) o.client_secret = *v;
      if (auto x = reader.required(n, "redirect_uri", ctx + ".oauth"))
        if (auto v = reader.string_setting(x, ctx + ".oauth.redirect_uri")) o.redirect_uri = *v;
      if (auto x = n["scope"])
        if (auto v = reader.string_setting(x, ctx + ".oauth.scope")) o.scope = *v;
      if (auto x = n["authorization_url"])
        if (auto v = reader.string_setting(x, ctx + ".oauth.authorization_url"))
          o.authorization_url = *v;
      if (auto x = n["token_url"])
        if (auto v = reader.string_setting(x, ctx + ".oauth.token_url")) o.token_url = *v;
      spec.oauth = o;
      if (!c.auth.basic_user.empty())
        reader.error(n, "\"" + ctx +
                            ".oauth\": cannot be combined with basic_auth (both use the "
                            "Authorization header)");
    }
  }
  int methods = !c.auth.api_tokens.empty() + has_login + static_cast<int>(spec.oauth.has_value());
  if (methods == 0)
    reader.error(node, "\"" + ctx + "\": needs credentials: api_token(s), login/password or oauth");
  if (methods > 1)
    reader.error(node, "\"" + ctx +
                           "\": choose one of api_token(s), login/password and oauth (kintone "
                           "uses the first it finds, which hides mistakes)");
  if (auto n = node["timeout"])
    if (auto v = reader.integer(n, ctx + ".timeout", 1, 300)) c.timeout = std::chrono::seconds(*v);
  if (auto n = node["max_concurrency"])
    if (auto v = reader.integer(n, ctx + ".max_concurrency", 1, 100))
      c.max_concurrency = static_cast<int>(*v);
  if (auto n = node["max_get_url_bytes"])
    if (auto v = reader.integer(n, ctx + ".max_get_url_bytes", 256, 8000))
      c.max_get_url_bytes = static_cast<std::size_t>(*v);
  if (auto n = node["daily_request_limit"])
    if (auto v = reader.integer(n, ctx + ".daily_request_limit", 1, 100000000))
      c.daily_request_limit = static_cast<std::uint64_t>(*v);
  if (auto n = node["retry"]) {
    if (reader.expect_map(n, ctx + ".retry")) {
      reader.check_keys(n, {"attempts", "backoff_ms", "max_backoff_ms"}, ctx + ".retry");
      if (auto x = n["attempts"])
        if (auto v = reader.integer(x, ctx + ".retry.attempts", 1, 10))
          c.retry.attempts = static_cast<int>(*v);
      if (auto x = n["backoff_ms"])
        if (auto v = reader.integer(x, ctx + ".retry.backoff_ms", 1, 60000))
          c.retry.backoff = std::chrono::milliseconds(*v);
      if (auto x = n["max_backoff_ms"])
        if (auto v = reader.integer(x, ctx + ".retry.max_backoff_ms", 1, 300000))
          c.retry.max_backoff = std::chrono::milliseconds(*v);
    }
  }
  if (reader.error_count() != before) return std::nullopt;
  return spec;
}

std::optional<DirectorySpec> load_directory(const YAML::Node& node, const KintoneSettings& s,
                                            rules::ConfigReader& reader) {
  const std::string ctx = "kintone.directory";
  if (!reader.expect_map(node, ctx)) return std::nullopt;
  reader.check_keys(node,
                    {"connection", "app", "phone_fields", "name_field", "company_field",
                     "updated_field", "interval_seconds", "paging"},
                    ctx);
  std::size_t before = reader.error_count();
  DirectorySpec d;
  if (auto n = node["connection"]) {
    if (auto v = reader.string_setting(n, ctx + ".connection")) {
      if (!s.connection(*v))
        reader.error(n, "unknown kintone connection \"" + *v + "\"; known: " + s.names());
      d.connection = *v;
    }
  } else if (s.connections.size() == 1) {
    d.connection = s.connections.begin()->first;
  } else {
    reader.error(node, "\"" + ctx + "\" needs \"connection\" (known: " + s.names() + ")");
  }
  if (auto n = reader.required(node, "app", ctx))
    if (auto v = reader.integer(n, ctx + ".app", 1, 1000000000)) d.app = static_cast<int>(*v);
  if (auto n = reader.required(node, "phone_fields", ctx))
    if (auto v = field_list(n, ctx + ".phone_fields", reader)) d.phone_fields = *v;
  if (auto n = node["name_field"])
    if (auto v = field_code(n, ctx + ".name_field", reader)) d.name_field = *v;
  if (auto n = node["company_field"])
    if (auto v = field_code(n, ctx + ".company_field", reader)) d.company_field = *v;
  if (auto n = node["updated_field"])
    if (auto v = field_code(n, ctx + ".updated_field", reader)) d.updated_field = *v;
  if (auto n = node["interval_seconds"])
    if (auto v = reader.integer(n, ctx + ".interval_seconds", 10, 86400))
      d.interval = std::chrono::seconds(*v);
  if (auto n = node["paging"])
    if (auto v = reader.choice(n, ctx + ".paging", {"id", "cursor"}))
      d.paging = *v == "cursor" ? Paging::cursor : Paging::id;
  if (reader.error_count() != before) return std::nullopt;
  return d;
}

}  // namespace

const ConnectionSpec* KintoneSettings::connection(std::string_view name) const {
  auto it = connections.find(name);
  return it == connections.end() ? nullptr : &it->second;
}

std::string KintoneSettings::names() const {
  std::string out;
  for (const auto& [name, spec] : connections) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "(none)" : out;
}

std::shared_ptr<const rules::Section> load_section(const YAML::Node& node,
                                                   rules::ConfigReader& reader) {
  if (!reader.expect_map(node, "kintone")) return nullptr;
  reader.check_keys(node, {"connections", "directory"}, "kintone");
  std::size_t before = reader.error_count();
  auto settings = std::make_shared<KintoneSettings>();
  if (auto conns = reader.required(node, "connections", "kintone")) {
    if (reader.expect_map(conns, "kintone.connections")) {
      for (auto it = conns.begin(); it != conns.end(); ++it) {
        std::string name = it->first.as<std::string>("");
        if (!valid_connection_name(name)) {
          reader.error(it->first, "kintone connection name \"" + name +
                                      "\" must be letters, digits, - and _ (it appears in URLs)");
          continue;
        }
        if (auto spec = load_connection(name, it->second, reader))
          settings->connections.emplace(name, std::move(*spec));
      }
      if (conns.size() == 0) reader.error(conns, "\"kintone.connections\" is empty");
    }
  }
  if (auto dir = node["directory"]) settings->directory = load_directory(dir, *settings, reader);
  if (reader.error_count() != before) return nullptr;
  return settings;
}

// ---- the `kintone:` rule action ----

namespace {

bool is_variable_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::optional<FieldTemplates> field_templates(const std::string& field, const YAML::Node& node,
                                              const std::string& what,
                                              rules::ConfigReader& reader) {
  FieldTemplates f;
  f.field = field;
  if (!valid_field_code(field)) {
    reader.error(node, "\"" + what + "\": \"" + field + "\" is not a kintone field code");
    return std::nullopt;
  }
  if (node.IsSequence()) {
    f.list = true;
    for (const auto& item : node) {
      auto t = reader.template_setting(item, what + "." + field, rules::Destination::text);
      if (!t) return std::nullopt;
      f.values.push_back(std::move(*t));
    }
    return f;
  }
  auto t = reader.template_setting(node, what + "." + field, rules::Destination::text);
  if (!t) return std::nullopt;
  f.values.push_back(std::move(*t));
  return f;
}

std::vector<FieldTemplates> field_map(const YAML::Node& node, const std::string& what,
                                      rules::ConfigReader& reader) {
  std::vector<FieldTemplates> out;
  if (!reader.expect_map(node, what)) return out;
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string field = it->first.as<std::string>("");
    // The RemoTEL bodies write {"電話番号": {"value": "{TEL}"}}; accept that shape too.
    YAML::Node value = it->second;
    if (value.IsMap()) {
      if (value.size() == 1 && value["value"]) {
        value = value["value"];
      } else {
        reader.error(value, "\"" + what + "." + field + "\": a value, a list, or {value: ...}");
        continue;
      }
    }
    if (auto f = field_templates(field, value, what, reader)) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace

std::shared_ptr<const rules::Action> load_action(const YAML::Node& node,
                                                 rules::ConfigReader& reader,
                                                 const std::string& rule_name) {
  const std::string ctx = "kintone";
  if (!reader.expect_map(node, ctx)) return nullptr;
  const std::vector<std::string> all_keys = {
      "connection", "app", "op",         "where",    "phone",  "query",   "fields",   "order_by",
      "limit",      "id",  "update_key", "revision", "record", "comment", "mentions", "results"};
  std::set<std::string> present = reader.check_keys(node, all_keys, ctx);
  std::size_t before = reader.error_count();
  ActionSpec s;

  auto settings = reader.section<KintoneSettings>("kintone");
  // Without the section the action is still read through, so every mistake in it is reported
  // at once (and the schema learns each key's kind).
  if (!settings) {
    reader.error(node, "rule \"" + rule_name +
                           "\": a kintone action needs a top-level \"kintone:\" section with "
                           "connections");
  }
  if (auto n = node["connection"]) {
    if (auto v = reader.string_setting(n, ctx + ".connection"); v && settings) {
      if (const ConnectionSpec* c = settings->connection(*v)) {
        s.connection_name = *v;
        s.connection = *c;
      } else {
        reader.error(n, "unknown kintone connection \"" + *v + "\"; known: " + settings->names());
      }
    }
  } else if (!settings) {
  } else if (settings->connections.size() == 1) {
    s.connection_name = settings->connections.begin()->first;
    s.connection = settings->connections.begin()->second;
  } else {
    reader.error(node,
                 "\"kintone.connection\" is required when there are several connections "
                 "(known: " +
                     settings->names() + ")");
  }
  if (auto n = reader.required(node, "app", ctx))
    if (auto v = reader.integer(n, ctx + ".app", 1, 1000000000)) s.app = static_cast<int>(*v);
  std::string op_name = "find";
  if (auto n = node["op"])
    if (auto v = reader.choice(n, ctx + ".op",
                               {"find", "get", "create", "update", "upsert", "comment", "history"}))
      op_name = *v;
  static const std::map<std::string, Op> ops = {{"find", Op::find},      {"get", Op::get},
                                                {"create", Op::create},  {"update", Op::update},
                                                {"upsert", Op::upsert},  {"comment", Op::comment},
                                                {"history", Op::history}};
  s.op = ops.at(op_name);

  // Which keys each operation reads; any other is a mistake worth reporting.
  static const std::map<Op, std::vector<std::string>> used = {
      {Op::find, {"where", "phone", "query", "fields", "order_by", "limit", "results"}},
      {Op::get, {"id", "results"}},
      {Op::create, {"record"}},
      {Op::update, {"id", "update_key", "revision", "record"}},
      {Op::upsert, {"update_key", "record"}},
      {Op::comment, {"id", "comment", "mentions"}},
      {Op::history, {"update_key", "record"}}};
  const auto& mine = used.at(s.op);
  for (const auto& key : present) {
    if (key == "connection" || key == "app" || key == "op") continue;
    if (std::find(mine.begin(), mine.end(), key) == mine.end()) {
      std::string allowed;
      for (const auto& k : mine) allowed += (allowed.empty() ? "" : ", ") + k;
      reader.error(node[key], "\"kintone." + key + "\" is not used by op " + op_name +
                                  " (it reads: " + allowed + ")");
    }
  }
  auto tmpl = [&](const char* key) -> std::optional<rules::Template> {
    if (auto n = node[key])
      return reader.template_setting(n, ctx + "." + key, rules::Destination::text);
    return std::nullopt;
  };
  auto require = [&](const char* key) {
    if (!node[key]) reader.error(node, "op " + op_name + " needs \"kintone." + key + "\"");
  };

  if (auto n = node["where"]) s.where = field_map(n, ctx + ".where", reader);
  if (auto n = node["phone"]) {
    if (reader.expect_map(n, ctx + ".phone")) {
      reader.check_keys(n, {"fields", "value"}, ctx + ".phone");
      if (auto f = reader.required(n, "fields", ctx + ".phone")) {
        std::vector<std::string> fields;
        if (f.IsScalar())
          fields.push_back(f.Scalar());
        else if (reader.expect_list(f, ctx + ".phone.fields"))
          for (const auto& x : f) fields.push_back(x.as<std::string>(""));
        for (const auto& x : fields)
          if (!valid_field_code(x))
            reader.error(f, "\"kintone.phone.fields\": \"" + x + "\" is not a kintone field code");
        s.phone_fields = fields;
      }
      if (auto v = n["value"])
        s.phone_value = reader.template_setting(v, ctx + ".phone.value", rules::Destination::text);
      else
        s.phone_value = reader.template_setting(YAML::Node("{TEL}"), ctx + ".phone.value",
                                                rules::Destination::text);
    }
  }
  s.query = tmpl("query");
  // Free query text: its placeholders are values, escaped as in a raw request's query.
  if (s.query)
    for (const auto& p : s.query->protect_kintone_query())
      reader.note(node["query"], "{" + p.name + "} is escaped for kintone's query language",
                  p.offset);
  if (auto n = node["fields"]) {
    if (reader.expect_list(n, ctx + ".fields")) {
      for (const auto& f : n) {
        std::string code = f.as<std::string>("");
        if (!valid_field_code(code))
          reader.error(f, "\"kintone.fields\": \"" + code + "\" is not a kintone field code");
        s.fields.push_back(code);
        if (is_variable_name(code)) s.results.emplace_back(upper(code), code);
      }
    }
  }
  if (auto n = node["order_by"])
    if (auto v = reader.string_setting(n, ctx + ".order_by")) s.order_by = *v;
  if (auto n = node["limit"])
    if (auto v = reader.integer(n, ctx + ".limit", 1, kMaxRecordsPerRequest))
      s.limit = static_cast<int>(*v);
  s.id = tmpl("id");
  s.revision = tmpl("revision");
  if (auto n = node["update_key"]) {
    if (reader.expect_map(n, ctx + ".update_key")) {
      reader.check_keys(n, {"field", "value"}, ctx + ".update_key");
      if (auto f = reader.required(n, "field", ctx + ".update_key")) {
        if (auto v = reader.string_setting(f, ctx + ".update_key.field")) {
          if (!valid_field_code(*v))
            reader.error(
                f, "\"kintone.update_key.field\": \"" + *v + "\" is not a kintone field code");
          s.key_field = *v;
        }
      }
      if (auto v = reader.required(n, "value", ctx + ".update_key"))
        s.key_value =
            reader.template_setting(v, ctx + ".update_key.value", rules::Destination::text);
    }
  }
  if (auto n = node["record"]) s.record = field_map(n, ctx + ".record", reader);
  s.comment = tmpl("comment");
  if (auto n = node["mentions"]) {
    if (reader.expect_list(n, ctx + ".mentions")) {
      for (const auto& m : n) {
        std::string type = "USER";
        if (m.IsMap()) {
          reader.check_keys(m, {"code", "type"}, ctx + ".mentions");
          if (auto t = m["type"])
            if (auto v =
                    reader.choice(t, ctx + ".mentions.type", {"USER", "GROUP", "ORGANIZATION"}))
              type = *v;
        }
        // Bound once: assigning to a YAML::Node would overwrite the node it refers to.
        const YAML::Node code =
            m.IsMap() ? reader.required(m, "code", ctx + ".mentions") : YAML::Node(m);
        if (!code) continue;
        if (auto t =
                reader.template_setting(code, ctx + ".mentions.code", rules::Destination::text))
          s.mentions.emplace_back(std::move(*t), type);
      }
      if (s.mentions.size() > 10)
        reader.error(n, "\"kintone.mentions\": kintone accepts at most 10, got " +
                            std::to_string(s.mentions.size()));
    }
  }
  if (auto n = node["results"]) {
    if (reader.expect_map(n, ctx + ".results")) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        std::string suffix = it->first.as<std::string>("");
        if (!is_variable_name(suffix))
          reader.error(it->first, "\"kintone.results\": \"" + suffix +
                                      "\" must be a variable name (A-Z, a-z, 0-9, _)");
        auto field = reader.string_setting(it->second, ctx + ".results." + suffix);
        if (field && !valid_field_code(*field))
          reader.error(it->second, "\"kintone.results." + suffix + "\": \"" + *field +
                                       "\" is not a kintone field code");
        if (field) {
          s.results.emplace_back(suffix, *field);
          if (!s.fields.empty() &&
              std::find(s.fields.begin(), s.fields.end(), *field) == s.fields.end())
            s.fields.push_back(*field);
        }
      }
    }
  }

  switch (s.op) {
    case Op::find:
      break;
    case Op::get:
      require("id");
      break;
    case Op::create:
    case Op::history:
      require("record");
      break;
    case Op::update:
      require("record");
      if (static_cast<bool>(node["id"]) == static_cast<bool>(node["update_key"]))
        reader.error(node,
                     "op update needs exactly one of \"kintone.id\" and \"kintone.update_key\"");
      break;
    case Op::upsert:
      require("update_key");
      require("record");
      break;
    case Op::comment:
      require("id");
      require("comment");
      break;
  }
  if (reader.error_count() != before) return nullptr;
  return std::make_shared<KintoneAction>(std::move(s));
}

}  // namespace callbridge::kintone
