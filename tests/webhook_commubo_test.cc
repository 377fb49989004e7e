// commubo's inbound callback: the 002 payload mapped as is, decisions, the deadline, malformed
// payloads, and the sample configuration run through the engine against a fake kintone.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "bridge/connectors.h"
#include "connectors/clock/config.h"
#include "connectors/clock/service.h"
#include "connectors/commubo/action.h"
#include "connectors/commubo/service.h"
#include "rules/engine.h"
#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/memory_store.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge;
using namespace std::chrono_literals;

using callbridge::testing::MemoryStore;

namespace {

const std::string kSamples = std::string(CALLBRIDGE_SOURCE_DIR) + "/samples";

// Records submitted events; `behave` plays the dispatcher (or does nothing at all).
class FakeSink final : public rules::EventSink {
 public:
  std::function<void(const rules::EventInput&, std::shared_ptr<rules::EventObserver>)> behave;
  bool fail = false;
  std::vector<rules::EventInput> events;
  std::vector<std::shared_ptr<rules::EventObserver>> observers;

  std::optional<rules::SubmittedEvent> submit(const rules::EventInput& event,
                                              std::shared_ptr<rules::EventObserver> observer,
                                              rules::SubmitRejection& rejection) override {
    if (fail) {
      rejection = {503, "journal_unavailable", "journal unavailable"};
      return std::nullopt;
    }
    events.push_back(event);
    observers.push_back(observer);
    if (behave) behave(event, observer);
    return rules::SubmittedEvent{"ev-" + std::to_string(events.size()), event.call_id};
  }
};

rules::RuleOutcome decided(const std::string& rule, int status, const std::string& body = "") {
  rules::RuleOutcome out;
  out.rule = rule;
  out.status = rules::RuleStatus::succeeded;
  out.extracted["DECISION_STATUS"] = std::to_string(status);
  out.extracted["DECISION_BODY"] = body;
  return out;
}

rules::HttpRequest post(std::string body) {
  rules::HttpRequest request;
  request.method = "POST";
  request.path = "/v1/commubo/inbound";
  request.headers.emplace("content-type", "application/json");
  request.body = std::move(body);
  return request;
}

// An answer about event `event_id`: the note the call's history shows.
nlohmann::json answer_record(MemoryStore& store, const std::string& event_id) {
  auto text = store.get(rules::kEventNotes, event_id + "/commubo");
  REQUIRE(text);
  return nlohmann::json::parse(*text);
}

std::string known_payload() {
  return testing::read_file(kSamples + "/events/commubo.known.json");
}

}  // namespace

TEST_CASE("commubo: the 002 payload as is maps to commubo.inbound", "[webhook][commubo]") {
  std::string error;
  auto event = commubo::commubo_event_from_text(known_payload(), error);
  INFO(error);
  REQUIRE(event);
  CHECK(event->event == "commubo.inbound");
  CHECK(event->call_id == "1234567890123456");
  CHECK(event->tel == "0330001234");
  CHECK(event->answered == false);
  auto& v = event->vars;
  CHECK(v["COMMUBO_CALL_TYPE"] == "0");
  CHECK(v["COMMUBO_SCENARIO_ID"] == "FFFFEEEE-DDDD-CCCC-BBBB-AAAA000099998888");
  CHECK(v["COMMUBO_CUSTOMER_FOUND"] == "1");
  CHECK(v["COMMUBO_CUSTOMER_ID"] == "0000AAAA-BBBB-CCCC-DDDD-EEEEFFFF11112222");
  CHECK(v["COMMUBO_CUSTOMER_CREATED_DATE_TIME"] == "2018-09-01T13:01:23+09:00");
  CHECK(v["COMMUBO_CUSTOMER_FAMILY_NAME"] == "鈴木");
  CHECK(v["COMMUBO_CUSTOMER_FAMILY_NAME_KANA"] == "スズキ");
  CHECK(v["COMMUBO_CUSTOMER_PERSONAL_NAME"] == "一郎");
  CHECK(v["COMMUBO_CUSTOMER_MIDDLE_NAME_KANA"] == "スミス");
  CHECK(v["COMMUBO_CUSTOMER_PHONE_NUMBERS"] == "0330001234");
  CHECK(v["COMMUBO_CUSTOMER_PHONE_NUMBERS_1"] == "0330001234");
  CHECK(v["COMMUBO_CUSTOMER_ORG_SHORT_NAME_KANA"] == "エーアイケショウヒン");
  CHECK(v["COMMUBO_CUSTOMER_DEPT_SHORT_NAME"] == "経企");
  CHECK(v["COMMUBO_CUSTOMER_NOTE"] == "あいうえお");
  CHECK(v["COMMUBO_OPERATOR_ID"] == "11112222-3333-4444-5555-6666777788889999");
  CHECK(v["COMMUBO_OPERATOR_VOICE_ID"] == "123");
  CHECK(v["COMMUBO_OPERATOR_NAME"] == "AIオペレータのコミュボ");
  CHECK(v["COMMUBO_OPERATOR_SHORT_NAME_KANA"] == "コミュボ");
  CHECK(v["COMMUBO_OPERATOR_DEPT_SHORT_NAME"] == "R&D");
  CHECK(v["COMMUBO_OPERATOR_UPDATED_DATE_TIME"] == "2018-09-01T13:01:23+09:00");
  CHECK(v["COMMUBO_CALL_ID"] == "1234567890123456");
  CHECK(v["COMMUBO_PHONE_NUMBER"] == "0330001234");
  // 3 top-level, 19 customer fields + PHONE_NUMBERS_1, 16 operator, 1 scenario, FOUND
  CHECK(v.size() == 3 + 19 + 1 + 16 + 1 + 1);
}

TEST_CASE("commubo: unknown callers, typed variants and malformed payloads", "[webhook][commubo]") {
  std::string error;
  SECTION("no customer object: an unknown caller is normal") {
    auto event = commubo::commubo_event_from_text(
        testing::read_file(kSamples + "/events/commubo.unknown.json"), error);
    REQUIRE(event);
    CHECK(event->vars["COMMUBO_CUSTOMER_FOUND"] == "0");
    CHECK(event->vars.count("COMMUBO_CUSTOMER_ID") == 0);
    CHECK(event->vars["COMMUBO_OPERATOR_ID"] == "11112222-3333-4444-5555-6666777788889999");
  }
  SECTION("numbers where the reference says integer; the misspelt voice ID field") {
    auto event = commubo::commubo_event_from_text(
        R"({"callId": 42, "callType": 1, "phoneNumber": "0312345678",
            "operator": {"operatorVocieId": 7}, "customer": null})",
        error);
    REQUIRE(event);
    CHECK(event->call_id == "42");
    CHECK(event->vars["COMMUBO_CALL_TYPE"] == "1");
    CHECK(event->vars["COMMUBO_OPERATOR_VOICE_ID"] == "7");
    CHECK(event->vars["COMMUBO_CUSTOMER_FOUND"] == "0");
  }
  SECTION("no phoneNumber: TEL is left to the engine (anonymous)") {
    auto event = commubo::commubo_event_from_text(R"({"callId": "C1"})", error);
    REQUIRE(event);
    CHECK(event->tel.empty());
  }
  for (std::string bad : {"", "not json", "[1,2]", "{}", R"({"callId": ""})",
                          R"({"callId": {"x": 1}})", R"({"callId": "a\nb"})",
                          R"({"callId": "C1", "phoneNumber": ["1"]})", "{\"callId\": \"\xff\"}"}) {
    INFO(bad);
    CHECK_FALSE(commubo::commubo_event_from_text(bad, error));
    CHECK_FALSE(error.empty());
  }
  CHECK(commubo::upper_snake("familyNameKana") == "FAMILY_NAME_KANA");
  CHECK(commubo::upper_snake("customerId", "customer") == "ID");
  CHECK(commubo::upper_snake("customerIdX2", "customer") == "ID_X2");
  CHECK(commubo::upper_snake("customers", "customer") == "CUSTOMERS");
  CHECK(commubo::upper_snake("HTTPStatus") == "HTTP_STATUS");
}

TEST_CASE("commubo: answers with the first decision, the default, or the error status",
          "[webhook][commubo]") {
  MemoryStore store;
  FakeSink sink;
  commubo::CommuboSettings settings;
  settings.deadline = 5000ms;
  commubo::CommuboService service(settings, store, sink);
  rules::HttpResponse response;

  SECTION("a decide rule rejects: its status and body, at once, later decisions ignored") {
    sink.behave = [](const rules::EventInput&, std::shared_ptr<rules::EventObserver> o) {
      rules::RuleOutcome skipped;
      skipped.rule = "closed";
      o->on_rule(skipped, {});
      o->on_rule(decided("blocklist", 486, R"({"reason":"blocked"})"), {});
      o->on_rule(decided("unknown-caller", 200), {});
      // on_finished never comes: the answer must not wait for it
    };
    service.handle(post(known_payload()), response);
    CHECK(response.status == 486);
    CHECK(response.body == R"({"reason":"blocked"})");
    CHECK(response.content_type == "application/json");
    auto record = answer_record(store, "ev-1");
    CHECK(record["status"] == 486);
    CHECK(record["reason"] == "decided");
    CHECK(record["rule"] == "blocklist");
    CHECK(record["call_id"] == "1234567890123456");
    CHECK(record["elapsed_ms"].get<long long>() < 5000);
    REQUIRE(sink.events.size() == 1);
    CHECK(sink.events[0].event == "commubo.inbound");
  }
  SECTION("a decide rule continues the call from another thread") {
    std::thread worker;
    sink.behave = [&](const rules::EventInput&, std::shared_ptr<rules::EventObserver> o) {
      worker = std::thread([o] { o->on_rule(decided("known-caller", 200), {}); });
    };
    service.handle(post(known_payload()), response);
    worker.join();
    CHECK(response.status == 200);
    auto body = nlohmann::json::parse(response.body);
    CHECK(body["action"] == "continue");
    CHECK(body["rule"] == "known-caller");
    CHECK(body["event_id"] == "ev-1");
  }
  SECTION("all rules finished without a decision: the default") {
    sink.behave = [](const rules::EventInput&, std::shared_ptr<rules::EventObserver> o) {
      o->on_finished({});
    };
    service.handle(post(known_payload()), response);
    CHECK(response.status == 200);
    CHECK(nlohmann::json::parse(response.body)["reason"] == "default");
    CHECK(answer_record(store, "ev-1")["reason"] == "default");
  }
  SECTION("a failed decide outcome is not a decision") {
    sink.behave = [](const rules::EventInput&, std::shared_ptr<rules::EventObserver> o) {
      auto failed = decided("x", 486);
      failed.status = rules::RuleStatus::failed;
      o->on_rule(failed, {});
      o->on_finished({});
    };
    service.handle(post(known_payload()), response);
    CHECK(response.status == 200);
  }
  SECTION("malformed payload: on_error_status, journaled, no event") {
    service.handle(post("{\"callType\": \"0\"}"), response);
    CHECK(response.status == 200);
    auto body = nlohmann::json::parse(response.body);
    CHECK(body["reason"] == "error");
    CHECK(body["error"].get<std::string>().find("callId") != std::string::npos);
    CHECK(sink.events.empty());
    auto records = store.scan("commubo.answers");
    REQUIRE(records.size() == 1);
    CHECK(records[0].first.rfind("error-", 0) == 0);
    CHECK(nlohmann::json::parse(records[0].second)["reason"] == "error");
  }
  SECTION("the event cannot be stored: on_error_status") {
    sink.fail = true;
    service.handle(post(known_payload()), response);
    CHECK(response.status == 200);
    CHECK(nlohmann::json::parse(response.body)["reason"] == "error");
  }
}

TEST_CASE("commubo: configured statuses for errors and defaults", "[webhook][commubo]") {
  MemoryStore store;
  FakeSink sink;
  commubo::CommuboSettings settings;
  settings.deadline = 5000ms;
  settings.on_error_status = 503;
  settings.default_status = 480;
  settings.default_body = "closed";
  commubo::CommuboService service(settings, store, sink);
  rules::HttpResponse response;
  service.handle(post("nonsense"), response);
  CHECK(response.status == 503);
  sink.behave = [](const rules::EventInput&, std::shared_ptr<rules::EventObserver> o) {
    o->on_finished({});
  };
  service.handle(post(known_payload()), response);
  CHECK(response.status == 480);
  CHECK(response.body == "closed");
  CHECK(response.content_type.rfind("text/plain", 0) == 0);
  std::string metrics;
  service.metrics(metrics);
  CHECK(metrics.find("callbridge_commubo_answers_total{reason=\"default\",status=\"480\"} 1") !=
        std::string::npos);
}

TEST_CASE("commubo: a decision that never comes is answered at the deadline",
          "[webhook][commubo]") {
  MemoryStore store;
  FakeSink sink;  // never calls the observer back: a CRM that hangs
  commubo::CommuboSettings settings;
  settings.deadline = 300ms;
  commubo::CommuboService service(settings, store, sink);
  rules::HttpResponse response;
  auto start = std::chrono::steady_clock::now();
  service.handle(post(known_payload()), response);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed >= 300ms);
  CHECK(elapsed < 300ms + 700ms);
  CHECK(response.status == 200);
  CHECK(nlohmann::json::parse(response.body)["reason"] == "deadline");
  auto record = answer_record(store, "ev-1");
  CHECK(record["reason"] == "deadline");
  CHECK(record["elapsed_ms"].get<long long>() >= 300);
  // A decision after the answer is harmless.
  sink.observers[0]->on_rule(decided("late", 486), {});
  sink.observers[0]->on_finished({});
}

TEST_CASE("decide: sets the decision variables, no network", "[webhook][commubo]") {
  std::vector<rules::Template::Error> errors;
  auto body = rules::Template::compile(R"({"blocked":"{TEL}"})", rules::Destination::text,
                                       rules::process_env, errors);
  REQUIRE(errors.empty());
  commubo::DecideAction action(486, body);
  rules::CallContext call{"C1", {{"TEL", "0120999999"}}};
  rules::SecretSet secrets;
  std::function<bool(const http::Request&)> before = [](const http::Request&) {
    FAIL("decide must not send");
    return false;
  };
  rules::ActionContext ctx{call, secrets, nullptr, nullptr, before};
  rules::RuleOutcome out;
  action.run(ctx, out);
  CHECK(out.status == rules::RuleStatus::succeeded);
  CHECK(call.vars["DECISION_STATUS"] == "486");
  CHECK(call.vars["DECISION_BODY"] == R"({"blocked":"0120999999"})");
  CHECK(out.extracted["DECISION_STATUS"] == "486");
  CHECK(action.idempotent());
  CHECK(action.describe() == "decide 486 (reject)");
  CHECK(commubo::parse_decision_status("200") == 200);
  CHECK_FALSE(commubo::parse_decision_status("204"));
  CHECK_FALSE(commubo::parse_decision_status("600"));
  CHECK_FALSE(commubo::parse_decision_status("486x"));
}

TEST_CASE("decide and commubo: configuration accepted and rejected", "[webhook][commubo]") {
  const auto& registry = bridge::connector_registry();
  auto ok = rules::load_config_text(R"(
commubo: {deadline_ms: 1500, default_status: 200, on_error_status: 503}
rules:
  - {name: a, event: commubo.inbound, decide: 486}
  - {name: b, event: commubo.inbound, decide: {status: 200, body: "ok {TEL}"}}
)",
                                    "c.yaml", rules::process_env, registry);
  for (const auto& e : ok.errors) UNSCOPED_INFO(e.format());
  REQUIRE(ok.config);
  auto settings = ok.config->section<commubo::CommuboSettings>("commubo");
  REQUIRE(settings);
  CHECK(settings->deadline == 1500ms);
  CHECK(settings->on_error_status == 503);

  auto bad = rules::load_config_text(R"(
commubo: {deadline_ms: 50, default_status: 204, extra: 1}
rules:
  - {name: a, event: commubo.inbound, decide: {status: 204}}
  - {name: b, event: commubo.inbound, decide: {body: x}}
  - {name: c, event: commubo.inbound, decide: {status: 700, colour: red}}
)",
                                     "c.yaml", rules::process_env, registry);
  CHECK_FALSE(bad.config);
  std::string all;
  for (const auto& e : bad.errors) all += e.format() + "\n";
  INFO(all);
  CHECK(all.find("c.yaml:2:") != std::string::npos);
  CHECK(all.find("deadline_ms") != std::string::npos);
  CHECK(all.find("extra") != std::string::npos);
  CHECK(all.find("got 204") != std::string::npos);
  CHECK(all.find("status") != std::string::npos);
  CHECK(all.find("colour") != std::string::npos);
  CHECK(bad.errors.size() >= 6);
}

TEST_CASE("clock: local time, weekday, holidays and zones", "[webhook][clock]") {
  using namespace std::chrono;
  // 2026-04-01 00:30 UTC is Wednesday 09:30 in Tokyo.
  const sys_seconds t = sys_days{year{2026} / April / 1} + 30min;
  std::string error;
  auto tokyo = clock::TimeZone::load("Asia/Tokyo", error);
  REQUIRE(tokyo);
  auto vars = clock::clock_variables(t, *tokyo, {"2026-04-01"});
  CHECK(vars["NOW_DATE"] == "2026-04-01");
  CHECK(vars["NOW_TIME"] == "09:30");
  CHECK(vars["NOW_HHMM"] == "0930");
  CHECK(vars["NOW_WEEKDAY"] == "wed");
  CHECK(vars["NOW_HOLIDAY"] == "1");
  auto fixed = clock::TimeZone::load("-05:30", error);
  REQUIRE(fixed);
  CHECK(clock::clock_variables(t, *fixed)["NOW_TIME"] == "19:00");
  CHECK(clock::clock_variables(t, *fixed)["NOW_WEEKDAY"] == "tue");
  auto ny = clock::TimeZone::load("America/New_York", error);
  REQUIRE(ny);
  CHECK(ny->offset_at(sys_days{year{2026} / January / 15}) == -5h);
  CHECK(ny->offset_at(sys_days{year{2026} / July / 15}) == -4h);
  CHECK_FALSE(clock::TimeZone::load("Mars/Olympus", error));
  CHECK(error.find("Mars/Olympus") != std::string::npos);
  CHECK_FALSE(clock::TimeZone::load("../etc/passwd", error));
  CHECK_FALSE(clock::TimeZone::from_tzif("x", "TZif2", error));
}

// The sample run through the engine: rules decide as documented, against a fake kintone.
TEST_CASE("commubo sample: known, unknown and blocklisted callers, business hours",
          "[webhook][commubo][samples]") {
  testing::FakeKintone kintone;
  kintone.add_app(7, "record_no");
  kintone.add_api_token(7, "customer-app-token-7");
  kintone.insert_record(7, {{"電話番号", {{"value", "0311112222"}}}});
  std::string text = testing::replace_all(testing::read_file(kSamples + "/commubo.yaml"),
                                          "https://example.cybozu.com", kintone.base_url());
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "KINTONE_CUSTOMER_TOKEN") return std::string("customer-app-token-7");
    return std::nullopt;
  };
  auto loaded = rules::load_config_text(text, "commubo.yaml", env, bridge::connector_registry());
  for (const auto& e : loaded.errors) UNSCOPED_INFO(e.format());
  REQUIRE(loaded.config);
  auto clock_settings = loaded.config->section<clock::ClockSettings>("clock");
  REQUIRE(clock_settings);
  using namespace std::chrono;
  sys_seconds now = sys_days{year{2026} / April / 1} + 1h;  // Wed 10:00 in Tokyo
  clock::ClockService clock(*clock_settings, [&] { return now; });
  http::HttpClient client;
  rules::Engine engine(loaded.config->rules, loaded.config->secrets, &client);

  auto run = [&](const std::string& file, const std::string& tel = "") {
    std::string error;
    auto event =
        commubo::commubo_event_from_text(testing::read_file(kSamples + "/events/" + file), error);
    REQUIRE(event);
    if (!tel.empty()) event->tel = tel;
    rules::CallContext call;
    clock.enrich(*event, call.vars);
    std::string first;
    for (const auto& outcome : engine.run(*event, call)) {
      INFO(outcome.rule << ": " << outcome.error);
      CHECK(outcome.status != rules::RuleStatus::failed);
      if (first.empty() && outcome.extracted.count("DECISION_STATUS"))
        first = outcome.rule + " " + outcome.extracted.at("DECISION_STATUS");
    }
    return first;
  };
  CHECK(run("commubo.known.json") == "known-caller 200");                  // commubo knows them
  CHECK(run("commubo.unknown.json", "0311112222") == "known-caller 200");  // kintone knows them
  CHECK(kintone.record_count(7) == 1);
  CHECK(run("commubo.unknown.json") == "unknown-caller 200");
  CHECK(kintone.record_count(7) == 2);  // the unknown caller was recorded after the answer
  CHECK(run("commubo.blocked.json") == "blocklist 486");
  now = sys_days{year{2026} / April / 1} + 9h;  // 18:00 in Tokyo
  CHECK(run("commubo.known.json") == "closed 480");
  now = sys_days{year{2026} / May / 4} + 1h;  // a holiday (Monday)
  CHECK(run("commubo.known.json") == "closed 480");
}
