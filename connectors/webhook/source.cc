#include "connectors/webhook/source.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "connectors/webhook/signature.h"
#include "rules/config_reader.h"
#include "rules/events.h"

namespace callbridge::webhook {

namespace {

constexpr std::size_t kMaxTel = 64;
constexpr const char* kReserved[] = {"/v1/events", "/v1/calls", "/v1/commubo", "/healthz",
                                     "/readyz",    "/metrics",  "/api/"};

long long to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

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

// The delivery as read once: JSON document (when JSON), parameters, headers.
struct Delivery {
  const rules::HttpRequest& request;
  std::optional<nlohmann::json> json;
};

std::optional<std::string> read_field(const FieldSpec& spec, const Delivery& delivery) {
  std::optional<std::string> value;
  switch (spec.from) {
    case FieldSpec::From::constant:
      value = spec.name;
      break;
    case FieldSpec::From::key:
      if (delivery.request.has_param(spec.name)) value = delivery.request.param(spec.name);
      break;
    case FieldSpec::From::header:
      if (delivery.request.headers.count(spec.name)) value = delivery.request.header(spec.name);
      break;
    case FieldSpec::From::pointer:
      if (delivery.json) {
        nlohmann::json::json_pointer pointer(spec.name);
        if (delivery.json->contains(pointer)) {
          const auto& v = delivery.json->at(pointer);
          if (v.is_string())
            value = v.get<std::string>();
          else if (v.is_boolean())
            value = v.get<bool>() ? "true" : "false";
          else if (!v.is_null())
            value = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
      }
      break;
  }
  if (!value) return spec.fallback;
  if (auto mapped = spec.map.find(*value); mapped != spec.map.end()) return mapped->second;
  return value;
}

bool control_free(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

std::string escape_route(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == '.') out += '\\';
    out += c;
  }
  return out;
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

WebhookService::WebhookService(std::shared_ptr<const WebhookSettings> settings,
                               rules::KeyValueStore& store, rules::EventSink& events, WallClock now,
                               rules::InputLimits limits)
    : settings_(std::move(settings)),
      store_(store),
      events_(events),
      now_(std::move(now)),
      limits_(limits) {
  for (const auto& source : settings_->sources)
    delivery_locks_[source.name] = std::make_unique<std::mutex>();
}

std::vector<rules::Route> WebhookService::routes() {
  std::vector<rules::Route> out;
  for (const auto& source : settings_->sources)
    for (const auto& method : source.methods) {
      rules::Route route;
      route.method = method;
      route.pattern = escape_route(source.path);
      route.auth = source.auth == WebhookSource::Auth::token ? rules::RouteAuth::token
                                                             : rules::RouteAuth::none;
      const WebhookSource* s = &source;
      route.handler = [this, s](const rules::HttpRequest& request, rules::HttpResponse& response) {
        handle(*s, request, response);
      };
      out.push_back(std::move(route));
    }
  return out;
}

void WebhookService::handle(const WebhookSource& source, const rules::HttpRequest& request,
                            rules::HttpResponse& response) {
  auto count = [&](const std::string& outcome) {
    std::lock_guard lock(metrics_mutex_);
    ++counts_[{source.name, outcome}];
  };
  auto reject = [&](int status, std::string_view code, std::string_view message) {
    response.error(status, code, message);
    count(std::string(code));
  };
  const auto now = now_();

  if (source.auth == WebhookSource::Auth::signature) {
    auto check = verify_standard_webhook(
        source.secret, request.header("webhook-id"), request.header("webhook-timestamp"),
        request.header("webhook-signature"), request.body, now, source.tolerance);
    if (check != SignatureCheck::ok) return reject(401, "invalid_signature", to_string(check));
  }

  Delivery delivery{request, std::nullopt};
  const std::string content_type = request.header("content-type");
  if (rules::is_json_content_type(content_type)) {
    if (!source.accept_json)
      return reject(415, "unsupported_media_type", "this source does not accept JSON");
    std::string error;
    delivery.json = rules::parse_json_body(request.body, limits_, error);
    if (delivery.json->is_discarded()) return reject(400, "invalid_json", error);
  } else if (rules::is_form_content_type(content_type)) {
    if (!source.accept_form)
      return reject(415, "unsupported_media_type", "this source does not accept form bodies");
  } else if (request.body.empty()) {
    if (!source.accept_query)
      return reject(415, "unsupported_media_type", "this source needs a body");
  } else {
    return reject(415, "unsupported_media_type",
                  "send application/json or application/x-www-form-urlencoded");
  }

  // The delivery ID decides whether this was seen before; one delivery at a time per source so
  // two concurrent copies cannot both pass the check.
  std::optional<std::string> delivery_id;
  for (const auto& spec : source.delivery_id) {
    auto part = read_field(spec, delivery);
    if (!part || part->empty()) {  // incomplete: processed without deduplication
      delivery_id.reset();
      break;
    }
    delivery_id = delivery_id ? *delivery_id + "/" + *part : *part;
  }
  std::unique_lock<std::mutex> lock;
  const std::string key = delivery_id ? source.name + "/" + *delivery_id : std::string();
  if (delivery_id) lock = std::unique_lock(*delivery_locks_.at(source.name));

  auto reply = [&](const std::string& event_id, const std::string& call_id,
                   const std::string& event, bool duplicate) {
    response.status = source.reply_status;
    response.headers.clear();
    if (source.reply_body) {
      rules::Variables vars{{"EVENT_ID", event_id},
                            {"CALL_ID", call_id},
                            {"EVENT", event},
                            {"DUPLICATE", duplicate ? "1" : "0"}};
      rules::RenderReport report;
      response.body = source.reply_body->render(vars, report);
      response.content_type = source.reply_content_type;
    } else {
      nlohmann::json body = {{"event_id", event_id}, {"call_id", call_id}};
      if (duplicate) body["duplicate"] = true;
      response.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      response.content_type = "application/json";
    }
    count(duplicate ? "duplicate" : "accepted");
  };

  if (delivery_id) {
    if (auto seen = store_.get(kWebhookDeliveries, key)) {
      auto record = nlohmann::json::parse(*seen, nullptr, false);
      if (record.is_object() &&
          to_ms(now) - record.value("at_ms", 0LL) <= source.dedup_window.count() * 1000)
        return reply(record.value("event_id", ""), record.value("call_id", ""),
                     record.value("event", ""), true);
    }
  }

  rules::EventInput event;
  auto name = read_field(source.event, delivery);
  if (!name || name->empty()) return reject(400, "invalid_event", "no event name in this delivery");
  auto canonical = rules::canonical_event(*name);
  if (!canonical) return reject(400, "invalid_event", "unknown event \"" + *name + "\"");
  event.event = *canonical;
  auto call_id = read_field(source.call_id, delivery);
  if (!call_id) return reject(400, "invalid_event", "the call ID is missing");
  if (auto problem = rules::check_call_id(*call_id, "call ID"); !problem.empty())
    return reject(400, "invalid_event", problem);
  event.call_id = *call_id;
  if (source.tel) {
    auto tel = read_field(*source.tel, delivery);
    if (tel && (tel->size() > kMaxTel || !control_free(*tel)))
      return reject(400, "invalid_event", "the number is over 64 characters");
    if (tel) event.tel = *tel;
  }
  if (source.answered)
    if (auto answered = read_field(*source.answered, delivery))
      event.answered = source.answered_pattern->match(*answered).matched;
  for (const auto& [var, spec] : source.vars)
    if (auto value = read_field(spec, delivery)) event.vars[var] = *value;
  event.vars["WEBHOOK_SOURCE"] = source.name;
  if (delivery_id) event.vars["WEBHOOK_DELIVERY_ID"] = *delivery_id;

  rules::SubmitRejection rejection;
  std::optional<rules::SubmittedEvent> submitted;
  try {
    submitted = events_.submit(event, nullptr, rejection);
  } catch (const std::exception& e) {
    rejection = {503, "journal_unavailable", e.what()};
  }
  if (!submitted) {
    // Both reasons are temporary: the platform should deliver again after Retry-After.
    response.headers.emplace_back("Retry-After", std::to_string(rejection.retry_after_seconds));
    return reject(rejection.status >= 400 ? rejection.status : 503,
                  rejection.code.empty() ? "journal_unavailable" : rejection.code,
                  rejection.message.empty() ? "the event could not be stored" : rejection.message);
  }
  if (delivery_id) {
    // After the event is durable: a crash in between processes a redelivery twice, never zero.
    nlohmann::json record = {{"event_id", submitted->event_id},
                             {"call_id", submitted->call_id},
                             {"event", event.event},
                             {"at_ms", to_ms(now)}};
    std::string store_error;
    store_.put(kWebhookDeliveries, key,
               record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), store_error);
  }
  reply(submitted->event_id, submitted->call_id, event.event, false);
  if (lock.owns_lock()) lock.unlock();

  bool sweep = false;
  {
    std::lock_guard guard(sweep_mutex_);
    if (now - last_sweep_ > std::chrono::minutes(1)) {
      last_sweep_ = now;
      sweep = true;
    }
  }
  if (sweep) expire_deliveries();
}

void WebhookService::expire_deliveries() {
  const auto now = now_();
  std::map<std::string, std::chrono::seconds> windows;
  for (const auto& source : settings_->sources) windows[source.name] = source.dedup_window;
  for (const auto& [key, value] : store_.scan(kWebhookDeliveries)) {
    auto slash = key.find('/');
    auto window = windows.find(key.substr(0, slash));
    auto record = nlohmann::json::parse(value, nullptr, false);
    long long at = record.is_object() ? record.value("at_ms", 0LL) : 0;
    // Deliveries of a source no longer configured go too.
    if (window == windows.end() || to_ms(now) - at > window->second.count() * 1000) {
      std::string error;
      store_.erase(kWebhookDeliveries, key, error);
    }
  }
}

void WebhookService::metrics(std::string& out) const {
  std::lock_guard lock(metrics_mutex_);
  out += "# TYPE callbridge_webhook_deliveries_total counter\n";
  for (const auto& [key, n] : counts_)
    out += "callbridge_webhook_deliveries_total{source=\"" + key.first + "\",outcome=\"" +
           key.second + "\"} " + std::to_string(n) + "\n";
}

}  // namespace callbridge::webhook
