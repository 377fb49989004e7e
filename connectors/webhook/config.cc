#include "connectors/webhook/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "connectors/webhook/signature.h"
#include "rules/config_reader.h"

namespace callbridge::webhook {

namespace {

constexpr const char* kReserved[] = {"/v1/events", "/v1/calls", "/v1/commubo", "/healthz",
                                     "/readyz",    "/metrics",  "/api/"};

bool valid_name(const std::string& name, bool upper) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) {
    if (upper) return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

std::optional<FieldSpec> load_field(const YAML::Node& node, const std::string& what,
                                    rules::ConfigReader& reader, bool with_pattern = false) {
  FieldSpec spec;
  auto set_pointer = [&](const YAML::Node& at, const std::string& text) {
    try {
      (void)nlohmann::json::json_pointer(text);
    } catch (const nlohmann::json::exception&) {
      reader.error(at, "\"" + what + "\": \"" + text + "\" is not a JSON pointer (RFC 6901)");
      return false;
    }
    spec.from = FieldSpec::From::pointer;
    spec.name = text;
    return true;
  };
  if (node.IsScalar()) {
    auto text = reader.scalar(node, what);
    if (!text) return std::nullopt;
    if (!text->empty() && text->front() == '/') {
      if (!set_pointer(node, *text)) return std::nullopt;
    } else {
      spec.from = FieldSpec::From::key;
      spec.name = *text;
    }
    return spec;
  }
  if (!reader.expect_map(node, what)) return std::nullopt;
  const std::size_t errors = reader.error_count();
  std::vector<std::string> allowed{"pointer", "key", "header", "const", "map", "default"};
  if (with_pattern) allowed.push_back("pattern");
  auto keys = reader.check_keys(node, allowed, what);
  int sources = 0;
  for (const char* k : {"pointer", "key", "header", "const"}) sources += keys.count(k) ? 1 : 0;
  if (sources != 1) {
    reader.error(node, "\"" + what + "\": needs exactly one of pointer, key, header, const");
    return std::nullopt;
  }
  if (auto n = node["pointer"]) {
    if (auto v = reader.scalar(n, what + ".pointer")) set_pointer(n, *v);
  } else if (auto n = node["key"]) {
    if (auto v = reader.scalar(n, what + ".key")) spec.name = *v;
    spec.from = FieldSpec::From::key;
  } else if (auto n = node["header"]) {
    if (auto v = reader.scalar(n, what + ".header")) {
      spec.name = *v;
      std::transform(spec.name.begin(), spec.name.end(), spec.name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
    spec.from = FieldSpec::From::header;
  } else if (auto n = node["const"]) {
    if (auto v = reader.string_setting(n, what + ".const")) spec.name = *v;
    spec.from = FieldSpec::From::constant;
  }
  if (auto n = node["map"]) {
    if (reader.expect_map(n, what + ".map"))
      for (const auto& item : n) {
        auto from = reader.scalar(item.first, what + ".map");
        auto to = reader.scalar(item.second, what + ".map");
        if (from && to) spec.map[*from] = *to;
      }
  }
  if (auto n = node["default"])
    if (auto v = reader.scalar(n, what + ".default")) spec.fallback = *v;
  if (reader.error_count() != errors) return std::nullopt;
  return spec;
}

std::optional<WebhookSource> load_source(const YAML::Node& node, std::size_t index,
                                         rules::ConfigReader& reader) {
  const std::string context = "webhooks[" + std::to_string(index) + "]";
  if (!reader.expect_map(node, context)) return std::nullopt;
  const std::size_t errors = reader.error_count();
  reader.check_keys(node,
                    {"name", "path", "methods", "accept", "event", "call_id", "tel", "answered",
                     "vars", "auth", "delivery_id", "dedup_window_seconds", "reply"},
                    context);
  WebhookSource source;
  if (auto n = reader.required(node, "name", context))
    if (auto v = reader.scalar(n, context + ".name")) {
      if (!valid_name(*v, false))
        reader.error(n,
                     "\"" + context + ".name\": must be made of a-z 0-9 . _ -, got \"" + *v + "\"");
      source.name = *v;
    }
  const std::string what = source.name.empty() ? context : "webhooks \"" + source.name + "\"";
  if (auto n = reader.required(node, "path", context))
    if (auto v = reader.scalar(n, what + ".path")) {
      bool ok = v->size() > 1 && v->front() == '/' && std::all_of(v->begin(), v->end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' ||
                         c == '_' || c == '-' || c == '~';
                });
      if (!ok) {
        reader.error(n, "\"" + what + ".path\": must start with / and use A-Z a-z 0-9 / . _ - ~");
      } else {
        for (const char* reserved : kReserved)
          if (v->rfind(reserved, 0) == 0)
            reader.error(n, "\"" + what + ".path\": " + *v + " is taken by the bridge (" +
                                reserved + "); use /v1/hooks/...");
      }
      source.path = *v;
    }
  if (auto n = node["methods"]) {
    if (reader.expect_list(n, what + ".methods")) {
      source.methods.clear();
      for (const auto& m : n)
        if (auto v = reader.choice(m, what + ".methods", {"GET", "POST", "PUT"}))
          if (std::find(source.methods.begin(), source.methods.end(), *v) == source.methods.end())
            source.methods.push_back(*v);
    }
  }
  if (auto n = node["accept"]) {
    if (reader.expect_list(n, what + ".accept")) {
      source.accept_json = source.accept_form = source.accept_query = false;
      for (const auto& a : n)
        if (auto v = reader.choice(a, what + ".accept", {"json", "form", "query"})) {
          if (*v == "json") source.accept_json = true;
          if (*v == "form") source.accept_form = true;
          if (*v == "query") source.accept_query = true;
        }
    }
  }
  if (auto n = reader.required(node, "event", context))
    if (auto f = load_field(n, what + ".event", reader)) source.event = *f;
  if (auto n = reader.required(node, "call_id", context))
    if (auto f = load_field(n, what + ".call_id", reader)) source.call_id = *f;
  if (auto n = node["tel"]) source.tel = load_field(n, what + ".tel", reader);
  if (auto n = node["answered"]) {
    if (n.IsMap() && n["pattern"])
      source.answered_pattern = reader.regex_setting(n["pattern"], what + ".answered.pattern");
    source.answered = load_field(n, what + ".answered", reader, /*with_pattern=*/true);
  }
  if (!source.answered_pattern) {
    rules::RegexError error;
    source.answered_pattern = rules::Regex::compile("/^(1|true|yes)$/i", error);
  }
  if (auto n = node["vars"]) {
    if (reader.expect_map(n, what + ".vars"))
      for (const auto& item : n) {
        auto name = reader.scalar(item.first, what + ".vars");
        if (!name) continue;
        if (!valid_name(*name, true)) {
          reader.error(
              item.first,
              "\"" + what + ".vars\": a variable name is made of A-Z 0-9 _, got \"" + *name + "\"");
          continue;
        }
        if (auto f = load_field(item.second, what + ".vars." + *name, reader))
          source.vars.emplace_back(*name, *f);
      }
  }
  if (auto n = node["auth"]) {
    if (n.IsScalar()) {
      if (auto v = reader.choice(n, what + ".auth", {"token", "none"}))
        source.auth = *v == "none" ? WebhookSource::Auth::none : WebhookSource::Auth::token;
    } else if (reader.expect_map(n, what + ".auth")) {
      reader.check_keys(n, {"signature"}, what + ".auth");
      if (auto s = reader.required(n, "signature", what + ".auth");
          s && reader.expect_map(s, what + ".auth.signature")) {
        source.auth = WebhookSource::Auth::signature;
        reader.check_keys(s, {"secret", "tolerance_seconds"}, what + ".auth.signature");
        if (auto secret = reader.required(s, "secret", what + ".auth.signature"))
          if (auto v = reader.secret_setting(secret, what + ".auth.signature.secret")) {
            auto key = decode_webhook_secret(*v);
            if (!key)
              reader.error(
                  secret,
                  "\"" + what + ".auth.signature.secret\": whsec_ must be followed by base64");
            else
              source.secret = *key;
          }
        if (auto t = s["tolerance_seconds"])
          if (auto v = reader.integer(t, what + ".auth.signature.tolerance_seconds", 1, 86400))
            source.tolerance = std::chrono::seconds(*v);
      }
    }
  }
  if (auto n = node["delivery_id"]) {
    if (n.IsSequence()) {
      for (const auto& item : n)
        if (auto f = load_field(item, what + ".delivery_id", reader))
          source.delivery_id.push_back(*f);
    } else if (auto f = load_field(n, what + ".delivery_id", reader)) {
      source.delivery_id.push_back(*f);
    }
  } else if (source.auth == WebhookSource::Auth::signature) {
    source.delivery_id.push_back(FieldSpec{FieldSpec::From::header, "webhook-id", {}, {}});
  }
  if (auto n = node["dedup_window_seconds"])
    if (auto v = reader.integer(n, what + ".dedup_window_seconds", 1, 30 * 86400))
      source.dedup_window = std::chrono::seconds(*v);
  if (auto n = node["reply"]) {
    if (reader.expect_map(n, what + ".reply")) {
      reader.check_keys(n, {"status", "body", "content_type"}, what + ".reply");
      if (auto s = n["status"])
        if (auto v = reader.integer(s, what + ".reply.status", 200, 299))
          source.reply_status = static_cast<int>(*v);
      if (auto b = n["body"])
        source.reply_body =
            reader.template_setting(b, what + ".reply.body", rules::Destination::text);
      if (auto c = n["content_type"])
        if (auto v = reader.scalar(c, what + ".reply.content_type")) source.reply_content_type = *v;
    }
  }
  if (reader.error_count() != errors) return std::nullopt;
  return source;
}

}  // namespace

std::shared_ptr<const rules::Section> load_webhooks_section(const YAML::Node& node,
                                                            rules::ConfigReader& reader) {
  auto settings = std::make_shared<WebhookSettings>();
  if (node.IsNull()) return settings;
  if (!reader.expect_list(node, "webhooks")) return nullptr;
  const std::size_t errors = reader.error_count();
  std::set<std::string> names;
  std::set<std::pair<std::string, std::string>> routes;
  std::size_t index = 0;
  for (const auto& item : node) {
    auto source = load_source(item, index++, reader);
    if (!source) continue;
    if (!names.insert(source->name).second)
      reader.error(item["name"], "webhooks: the name \"" + source->name + "\" is used twice");
    for (const auto& method : source->methods)
      if (!routes.insert({method, source->path}).second)
        reader.error(item["path"], "webhooks: " + method + " " + source->path + " is used twice");
    settings->sources.push_back(std::move(*source));
  }
  if (reader.error_count() != errors) return nullptr;
  return settings;
}

}  // namespace callbridge::webhook
