// Configurable webhook sources: GET/form/JSON deliveries, Standard Webhooks signatures,
// duplicate deliveries, malformed input; and the samples' sources against their events.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <regex>

#include "bridge/connectors.h"
#include "bridge/event_input.h"
#include "connectors/webhook/config.h"
#include "connectors/webhook/service.h"
#include "connectors/webhook/signature.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge;
using namespace std::chrono_literals;

using callbridge::testing::MemoryStore;

namespace {

const std::string kSamples = std::string(CALLBRIDGE_SOURCE_DIR) + "/samples";
const std::string kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

class RecordingSink final : public rules::EventSink {
 public:
  std::vector<rules::EventInput> events;
  std::optional<rules::SubmittedEvent> submit(const rules::EventInput& event,
                                              std::shared_ptr<rules::EventObserver>,
                                              rules::SubmitRejection&) override {
    events.push_back(event);
    return rules::SubmittedEvent{"ev-" + std::to_string(events.size()), event.call_id};
  }
};

std::optional<std::string> test_env(std::string_view name) {
  if (name == "WEBHOOK_SECRET") return kSecret;
  if (name == "KINTONE_CUSTOMER_TOKEN") return std::string("customer-app-token-7");
  return std::nullopt;
}

std::shared_ptr<const webhook::WebhookSettings> load(const std::string& text,
                                                     const std::string& file = "w.yaml") {
  auto loaded = rules::load_config_text(text, file, test_env, bridge::connector_registry());
  for (const auto& e : loaded.errors) UNSCOPED_INFO(e.format());
  REQUIRE(loaded.config);
  auto settings = loaded.config->section<webhook::WebhookSettings>("webhooks");
  REQUIRE(settings);
  return settings;
}

rules::HttpRequest get(std::multimap<std::string, std::string> params) {
  rules::HttpRequest r;
  r.method = "GET";
  r.params = std::move(params);
  return r;
}

rules::HttpRequest post(std::string content_type, std::string body,
                        std::multimap<std::string, std::string> params = {}) {
  rules::HttpRequest r;
  r.method = "POST";
  r.headers.emplace("content-type", content_type);
  r.body = std::move(body);
  r.params = std::move(params);
  return r;
}

void sign(rules::HttpRequest& r, const std::string& id, long long timestamp,
          const std::string& secret = kSecret) {
  auto key = webhook::decode_webhook_secret(secret);
  REQUIRE(key);
  r.headers.emplace("webhook-id", id);
  r.headers.emplace("webhook-timestamp", std::to_string(timestamp));
  r.headers.emplace("webhook-signature",
                    "v1,bm90LXRoaXMtb25l " + webhook::sign_standard_webhook(
                                                 *key, id, std::to_string(timestamp), r.body));
}

// The events each sample's deliveries must become (as `POST /v1/events` bodies).
// What each webhook sample's deliveries become: samples/events/<sample>.events.json.
std::string expected_events(const std::string& file) {
  std::string stem = file.substr(0, file.size() - 5);
  return testing::read_file(std::string(CALLBRIDGE_SOURCE_DIR) + "/samples/events/" + stem +
                            ".events.json");
}

const std::string kGenericDelivery = R"({"type": "call.ringing",
  "data": {"call_id": "call_8f2", "from": "0312345678", "answered": false,
           "agent": {"name": "佐藤"}, "queue": "support"}})";

std::vector<rules::EventInput> sample_events(const std::string& file) {
  auto json = nlohmann::json::parse(expected_events(file));
  std::vector<rules::EventInput> out;
  for (const auto& item : json) {
    std::string error;
    auto event = event_from_json(item, error);
    INFO(error);
    REQUIRE(event);
    out.push_back(*event);
  }
  return out;
}

void check_same(const rules::EventInput& got, const rules::EventInput& want) {
  CHECK(got.event == want.event);
  CHECK(got.call_id == want.call_id);
  CHECK(got.tel == want.tel);
  CHECK(got.answered == want.answered);
  for (const auto& [k, v] : want.vars) {
    INFO(k);
    CHECK(got.vars.count(k) == 1);
    if (got.vars.count(k)) CHECK(got.vars.at(k) == v);
  }
}

}  // namespace

TEST_CASE("webhook signature: Standard Webhooks test vector and checks", "[webhook]") {
  // The Standard Webhooks reference vector.
  auto key = webhook::decode_webhook_secret(kSecret);
  REQUIRE(key);
  const std::string body = R"({"test": 2432232314})";
  CHECK(webhook::sign_standard_webhook(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body) ==
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(1614265330));
  const std::string good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
  using webhook::SignatureCheck;
  auto verify = [&](std::string_view sigs, std::chrono::system_clock::time_point now,
                    std::string_view b) {
    return webhook::verify_standard_webhook(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                            sigs, b, now, 300s);
  };
  CHECK(verify(good, at, body) == SignatureCheck::ok);
  CHECK(verify("v1,AAAA " + good, at + 299s, body) == SignatureCheck::ok);
  CHECK(verify(good, at, body + " ") == SignatureCheck::mismatch);
  CHECK(verify(good, at + 301s, body) == SignatureCheck::stale_timestamp);
  CHECK(verify(good, at - 301s, body) == SignatureCheck::stale_timestamp);
  CHECK(verify("", at, body) == SignatureCheck::missing_headers);
  CHECK(webhook::decode_webhook_secret("raw-secret") == "raw-secret");
  CHECK_FALSE(webhook::decode_webhook_secret("whsec_***"));
}

TEST_CASE("webhook source: a signed JSON delivery, bad and stale signatures, duplicates",
          "[webhook]") {
  auto settings =
      load(testing::read_file(kSamples + "/webhook-generic.yaml"), "webhook-generic.yaml");
  REQUIRE(settings->sources.size() == 1);
  const auto& source = settings->sources[0];
  MemoryStore store;
  RecordingSink sink;
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'780'000'000));
  webhook::WebhookService service(settings, store, sink, [&] { return now; });
  auto routes = service.routes();
  REQUIRE(routes.size() == 1);
  CHECK(routes[0].auth == rules::RouteAuth::none);
  CHECK(routes[0].method == "POST");

  const std::string body = kGenericDelivery;
  const long long ts =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  rules::HttpResponse response;

  SECTION("signed: accepted once, a redelivery acknowledged and not processed") {
    auto request = post("application/json", body);
    sign(request, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts);
    service.handle(source, request, response);
    CHECK(response.status == 200);
    REQUIRE(sink.events.size() == 1);
    auto want = sample_events("webhook-generic.json");
    check_same(sink.events[0], want[0]);
    CHECK(sink.events[0].vars.at("WEBHOOK_DELIVERY_ID") == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");

    now += 10s;  // the sender retries, signing again
    auto again = post("application/json", body);
    sign(again, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts + 10);
    rules::HttpResponse second;
    service.handle(source, again, second);
    CHECK(second.status == 200);
    CHECK(sink.events.size() == 1);
    CHECK(second.body.find("ev-1") != std::string::npos);
    CHECK(store.scan("webhook.deliveries").size() == 1);

    now += 25h;  // beyond the window: forgotten, and a delivery with that ID is new again
    service.expire_deliveries();
    CHECK(store.scan("webhook.deliveries").empty());
  }
  SECTION("a wrong signature: 401, nothing stored") {
    auto request = post("application/json", body);
    sign(request, "msg_1", ts, "whsec_" + rules::base64_encode("another key"));
    service.handle(source, request, response);
    CHECK(response.status == 401);
    CHECK(response.body.find("invalid_signature") != std::string::npos);
    CHECK(sink.events.empty());
  }
  SECTION("a body changed after signing: 401") {
    auto request = post("application/json", body);
    sign(request, "msg_1", ts);
    request.body += " ";
    service.handle(source, request, response);
    CHECK(response.status == 401);
  }
  SECTION("a stale timestamp: 401") {
    auto request = post("application/json", body);
    sign(request, "msg_1", ts - 600);
    service.handle(source, request, response);
    CHECK(response.status == 401);
    CHECK(response.body.find("tolerance") != std::string::npos);
    CHECK(sink.events.empty());
  }
  SECTION("no signature headers: 401") {
    service.handle(source, post("application/json", body), response);
    CHECK(response.status == 401);
  }
  SECTION("malformed deliveries: 400 or 415, nothing stored") {
    auto bad_json = post("application/json", "{not json");
    sign(bad_json, "msg_2", ts);
    service.handle(source, bad_json, response);
    CHECK(response.status == 400);
    CHECK(response.body.find("invalid_json") != std::string::npos);
    auto no_call = post("application/json", R"({"type": "call.ringing", "data": {}})");
    sign(no_call, "msg_3", ts);
    service.handle(source, no_call, response);
    CHECK(response.status == 400);
    CHECK(response.body.find("invalid_event") != std::string::npos);
    auto form = post("text/xml", "<x/>");
    sign(form, "msg_4", ts);
    service.handle(source, form, response);
    CHECK(response.status == 415);
    CHECK(sink.events.empty());
    CHECK(store.scan("webhook.deliveries").empty());
  }
}

TEST_CASE("webhook source: BIZTEL call action by GET", "[webhook]") {
  auto settings =
      load(testing::read_file(kSamples + "/webhook-biztel-get.yaml"), "webhook-biztel-get.yaml");
  const auto& source = settings->sources.at(0);
  MemoryStore store;
  RecordingSink sink;
  webhook::WebhookService service(settings, store, sink);
  auto routes = service.routes();
  REQUIRE(routes.size() == 1);
  CHECK(routes[0].method == "GET");
  CHECK(routes[0].auth == rules::RouteAuth::token);
  CHECK(std::regex_match("/v1/hooks/biztel", std::regex(routes[0].pattern)));
  CHECK_FALSE(std::regex_match("/v1/hooks/biztelx", std::regex(routes[0].pattern)));
  rules::HttpResponse response;
  for (auto [event, answered] : {std::pair{"inbound", "0"}, {"answered", "1"}, {"hangup", "1"}}) {
    service.handle(source,
                   get({{"token", "t"},
                        {"event", event},
                        {"id", "B-100"},
                        {"tel", "0312345678"},
                        {"answered", answered}}),
                   response);
    CHECK(response.status == 200);
  }
  auto want = sample_events("webhook-biztel-get.json");
  REQUIRE(sink.events.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) check_same(sink.events[i], want[i]);
  CHECK(sink.events[0].vars.count("token") == 0);
  service.handle(source, get({{"event", "inbound"}}), response);
  CHECK(response.status == 400);
  service.handle(source, get({{"event", "ring!"}, {"id", "B-1"}}), response);
  CHECK(response.status == 400);
}

TEST_CASE("webhook source: Twilio-style form-encoded status callback", "[webhook]") {
  auto settings =
      load(testing::read_file(kSamples + "/webhook-twilio.yaml"), "webhook-twilio.yaml");
  const auto& source = settings->sources.at(0);
  MemoryStore store;
  RecordingSink sink;
  webhook::WebhookService service(settings, store, sink);
  rules::HttpResponse response;
  for (auto status : {"ringing", "in-progress", "completed"}) {
    service.handle(source,
                   post("application/x-www-form-urlencoded", "(parsed by the server)",
                        {{"CallSid", "CA0123456789abcdef"},
                         {"From", "+81312345678"},
                         {"To", "+81501234567"},
                         {"CallStatus", status},
                         {"Direction", "inbound"},
                         {"CallDuration", "42"}}),
                   response);
    CHECK(response.status == 200);
  }
  auto want = sample_events("webhook-twilio.json");
  REQUIRE(sink.events.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) check_same(sink.events[i], want[i]);
  // Same CallSid and status twice (Twilio retried): processed once.
  service.handle(source,
                 post("application/x-www-form-urlencoded", "x",
                      {{"CallSid", "CA0123456789abcdef"}, {"CallStatus", "completed"}}),
                 response);
  CHECK(sink.events.size() == want.size());
  // JSON is not accepted by this source.
  service.handle(source, post("application/json", "{}"), response);
  CHECK(response.status == 415);
}

TEST_CASE("webhook source: configuration accepted and rejected", "[webhook]") {
  auto bad = rules::load_config_text(R"(
webhooks:
  - name: a
    path: /v1/events
    event: {const: inbound, key: x}
    call_id: /data/~2
  - name: a
    path: /v1/hooks/a b
    methods: [PATCH]
    accept: [xml]
    event: inbound
    call_id: id
    vars: {lower: id}
    auth: {signature: {secret: "whsec_***"}}
    reply: {status: 500}
  - name: b
    path: /v1/hooks/b
    event: {header: X-Event, colour: red}
    answered: {key: a, pattern: "/(/"}
  - {name: c, path: /v1/hooks/c, event: e, call_id: i}
  - {name: c, path: /v1/hooks/c, event: e, call_id: i}
)",
                                     "w.yaml", test_env, bridge::connector_registry());
  CHECK_FALSE(bad.config);
  std::string all;
  for (const auto& e : bad.errors) all += e.format() + "\n";
  INFO(all);
  for (const char* expected :
       {"taken by the bridge", "exactly one of", "JSON pointer", "used twice", "path", "PATCH",
        "xml", "call_id", "A-Z 0-9 _", "whsec_", "reply.status", "colour", "pattern"})
    CHECK(all.find(expected) != std::string::npos);
  CHECK(all.find("missing required key \"call_id\"") != std::string::npos);
}
