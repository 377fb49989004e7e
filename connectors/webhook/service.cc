#include "connectors/webhook/service.h"

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "connectors/webhook/signature.h"
#include "rules/events.h"
#include "rules/printable.h"

namespace callbridge::webhook {

namespace {

constexpr std::size_t kMaxTel = 64;

long long to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
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

// How long a delivery waits for a copy of itself being stored elsewhere, and how often it looks.
constexpr auto kClaimWait = std::chrono::seconds(2);
constexpr auto kClaimPoll = std::chrono::milliseconds(10);
// A claim this old belongs to a copy whose node stopped between claiming and recording.
constexpr auto kStaleClaim = std::chrono::milliseconds(30000);

// Tells this copy's claim from another's.
std::string claim_token() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(rng()));
  return text;
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

WebhookService::WebhookService(std::shared_ptr<const WebhookSettings> settings,
                               rules::KeyValueStore& store, rules::EventSink& events, Now now,
                               rules::InputLimits limits)
    : settings_(std::move(settings)),
      store_(store),
      events_(events),
      now_(std::move(now)),
      limits_(limits) {}

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
  auto reject = [&](int status, rules::ErrorCode code, std::string_view message) {
    response.error(status, code, message);
    count(std::string(rules::to_string(code)));
  };
  const auto now = now_();

  if (source.auth == WebhookSource::Auth::signature) {
    auto check = verify_standard_webhook(
        source.secret, request.header("webhook-id"), request.header("webhook-timestamp"),
        request.header("webhook-signature"), request.body, now, source.tolerance);
    if (check != SignatureCheck::ok)
      return reject(401, rules::ErrorCode::invalid_signature, to_string(check));
  }

  Delivery delivery{request, std::nullopt};
  const std::string content_type = request.header("content-type");
  if (rules::is_json_content_type(content_type)) {
    if (!source.accept_json)
      return reject(415, rules::ErrorCode::unsupported_media_type,
                    "this source does not accept JSON");
    std::string error;
    delivery.json = rules::parse_json_body(request.body, limits_, error);
    if (delivery.json->is_discarded()) return reject(400, rules::ErrorCode::invalid_json, error);
  } else if (rules::is_form_content_type(content_type)) {
    if (!source.accept_form)
      return reject(415, rules::ErrorCode::unsupported_media_type,
                    "this source does not accept form bodies");
  } else if (request.body.empty()) {
    if (!source.accept_query)
      return reject(415, rules::ErrorCode::unsupported_media_type, "this source needs a body");
  } else {
    return reject(415, rules::ErrorCode::unsupported_media_type,
                  "send application/json or application/x-www-form-urlencoded");
  }

  std::optional<std::string> delivery_id;
  for (const auto& spec : source.delivery_id) {
    auto part = read_field(spec, delivery);
    if (!part || part->empty()) {  // incomplete: processed without deduplication
      delivery_id.reset();
      break;
    }
    delivery_id = delivery_id ? *delivery_id + "/" + *part : *part;
  }
  const std::string key = delivery_id ? source.name + "/" + *delivery_id : std::string();

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

  rules::EventInput event;
  auto name = read_field(source.event, delivery);
  if (!name || name->empty())
    return reject(400, rules::ErrorCode::invalid_event, "no event name in this delivery");
  auto canonical = rules::canonical_event(*name);
  if (!canonical)
    return reject(400, rules::ErrorCode::invalid_event, "unknown event \"" + *name + "\"");
  event.event = *canonical;
  auto call_id = read_field(source.call_id, delivery);
  if (!call_id) return reject(400, rules::ErrorCode::invalid_event, "the call ID is missing");
  if (auto problem = rules::check_call_id(*call_id, "call ID"); !problem.empty())
    return reject(400, rules::ErrorCode::invalid_event, problem);
  event.call_id = *call_id;
  if (source.tel) {
    auto tel = read_field(*source.tel, delivery);
    if (tel && (tel->size() > kMaxTel || rules::has_control_characters(*tel)))
      return reject(400, rules::ErrorCode::invalid_event, "the number is over 64 characters");
    if (tel) event.tel = *tel;
  }
  if (source.answered)
    if (auto answered = read_field(*source.answered, delivery))
      event.answered = source.answered_pattern->match(*answered).matched;
  for (const auto& [var, spec] : source.vars)
    if (auto value = read_field(spec, delivery)) event.vars[var] = *value;
  event.vars["WEBHOOK_SOURCE"] = source.name;
  if (delivery_id) event.vars["WEBHOOK_DELIVERY_ID"] = *delivery_id;

  // The delivery ID decides whether this was seen before, in the journal: of copies arriving at
  // once, on this node or on others sharing the database, exactly one claims it.
  if (delivery_id) {
    Seen seen;
    std::string error;
    switch (claim_delivery(source, key, now, seen, error)) {
      case Claim::fresh:
        break;
      case Claim::duplicate:
        return reply(seen.event_id, seen.call_id, seen.event, true);
      case Claim::in_flight:
        response.headers.emplace_back("Retry-After", "1");
        return reject(503, rules::ErrorCode::busy,
                      "a copy of this delivery is being processed; deliver it again later");
      case Claim::failed:
        response.headers.emplace_back("Retry-After", "1");
        return reject(503, rules::ErrorCode::journal_unavailable,
                      "the delivery ID could not be recorded: " + error);
    }
  }

  rules::SubmitRejection rejection;
  std::optional<rules::SubmittedEvent> submitted;
  try {
    submitted = events_.submit(event, nullptr, rejection);
  } catch (const std::exception& e) {
    rejection.set(503, rules::ErrorCode::journal_unavailable, e.what());
  }
  if (!submitted) {
    // Not stored: the claim goes, so that the platform's next delivery is processed.
    if (delivery_id) {
      std::string ignored;
      store_.erase(kWebhookDeliveries, key, ignored);
    }
    // Both reasons are temporary: the platform should deliver again after Retry-After.
    response.headers.emplace_back("Retry-After", std::to_string(rejection.retry_after_seconds));
    return reject(rejection.status >= 400 ? rejection.status : 503, rejection.error_code(),
                  rejection.message.empty() ? "the event could not be stored" : rejection.message);
  }
  if (delivery_id) {
    // After the event is durable: a crash in between leaves the claim, which a redelivery takes
    // over once it is stale, so one delivery may be processed twice, never zero times.
    nlohmann::json record = {{"event_id", submitted->event_id},
                             {"call_id", submitted->call_id},
                             {"event", event.event},
                             {"at_ms", to_ms(now)}};
    std::string store_error;
    store_.put(kWebhookDeliveries, key,
               record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), store_error);
  }
  reply(submitted->event_id, submitted->call_id, event.event, false);

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

WebhookService::Claim WebhookService::claim_delivery(const WebhookSource& source,
                                                     const std::string& key,
                                                     std::chrono::system_clock::time_point now,
                                                     Seen& seen, std::string& error) {
  const std::string claim =
      nlohmann::json({{"claim", claim_token()}, {"at_ms", to_ms(now)}}).dump();
  const auto give_up = std::chrono::steady_clock::now() + kClaimWait;
  while (true) {
    auto current = store_.get(kWebhookDeliveries, key);
    std::optional<std::string_view> expected;  // absent
    if (current) {
      auto record = nlohmann::json::parse(*current, nullptr, false);
      long long age_ms = to_ms(now) - (record.is_object() ? record.value("at_ms", 0LL) : 0LL);
      bool expired = !record.is_object() || age_ms > source.dedup_window.count() * 1000;
      bool claimed = !expired && record.contains("claim");
      if (!expired && !claimed) {
        seen = {record.value("event_id", ""), record.value("call_id", ""),
                record.value("event", "")};
        return Claim::duplicate;
      }
      if (claimed && age_ms <= kStaleClaim.count()) {
        // Another copy is being stored right now: its outcome decides.
        if (std::chrono::steady_clock::now() >= give_up) return Claim::in_flight;
        std::this_thread::sleep_for(kClaimPoll);
        continue;
      }
      expected = *current;  // expired, or claimed by a node that never finished: taken over
    }
    error.clear();
    if (store_.put_if(kWebhookDeliveries, key, claim, expected, error)) return Claim::fresh;
    if (!error.empty()) return Claim::failed;
    // Another copy changed it between the read and the write: look again.
  }
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
