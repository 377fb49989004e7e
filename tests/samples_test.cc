// Every file in samples/ is a runnable specification: validated, and replayed against the fake
// kintone with the resulting records and comments asserted.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "bridge/connectors.h"
#include "bridge/event_input.h"
#include "rules/config.h"
#include "rules/engine.h"
#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge;
using callbridge::testing::FakeKintone;

namespace {

const std::string kSamples = std::string(CALLBRIDGE_SOURCE_DIR) + "/samples";
const std::string kToken = "customer-app-token-7";

std::optional<std::string> sample_env(std::string_view name) {
  if (name == "KINTONE_CUSTOMER_TOKEN") return kToken;
  if (name == "KINTONE_LOGIN") return std::string("operator");
  if (name == "KINTONE_PASSWORD") return std::string("s3cret-pass");
  if (name == "KINTONE_HISTORY_TOKEN") return std::string("history-app-token-15");
  if (name == "KINTONE_OAUTH_CLIENT_SECRET") return std::string("oauth-client-secret-1");
  if (name == "WEBHOOK_SECRET") return std::string("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  if (name == "PIGEON_TOKEN") return std::string("pigeon-token-0123456789");
  if (name == "CALLBRIDGE_TOKEN") return std::string("bridge-token-0123456789");
  if (name == "CALLBRIDGE_PG_PASSWORD") return std::string("pg-password");
  return std::nullopt;
}

// Loads a sample with its kintone domain pointed at the fake.
rules::Config load_sample(const std::string& name, const FakeKintone* kintone) {
  std::string text = testing::read_file(kSamples + "/" + name);
  if (kintone) text = testing::replace_all(text, "https://example.cybozu.com", kintone->base_url());
  auto result = rules::load_config_text(text, name, sample_env, bridge::connector_registry());
  for (const auto& e : result.errors) UNSCOPED_INFO(e.format());
  REQUIRE(result.config);
  return std::move(*result.config);
}

std::vector<rules::EventInput> load_events(const std::string& file) {
  auto json = nlohmann::json::parse(testing::read_file(kSamples + "/events/" + file));
  std::vector<rules::EventInput> events;
  for (const auto& item : json) {
    std::string error;
    auto event = event_from_json(item, error);
    INFO(error);
    REQUIRE(event);
    events.push_back(*event);
  }
  return events;
}

// Replays events through the engine with a real HTTP client; returns the call's variables.
rules::Variables replay(const rules::Config& config, const std::vector<rules::EventInput>& events,
                        std::vector<rules::RuleOutcome>* all = nullptr) {
  http::HttpClient client;
  rules::Engine engine(config.rules, config.secrets, &client);
  rules::CallContext call;
  for (const auto& event : events) {
    for (auto& outcome : engine.run(event, call)) {
      INFO(outcome.rule << ": " << outcome.error);
      CHECK((outcome.status == rules::RuleStatus::succeeded ||
             outcome.status == rules::RuleStatus::skipped));
      if (all) all->push_back(outcome);
    }
  }
  return call.vars;
}

std::string field(const nlohmann::json& record, const std::string& code) {
  if (!record.contains(code)) return "<absent>";
  const auto& value = record[code]["value"];
  return value.is_string() ? value.get<std::string>() : value.dump();
}

void setup_customer_app(FakeKintone& kintone) {
  kintone.add_app(7, "record_no");
  kintone.add_api_token(7, kToken);
}

void setup_password_apps(FakeKintone& kintone) {
  kintone.add_app(7, "record_no");
  kintone.add_app(8, "record_no");
  kintone.add_user("operator", "s3cret-pass");
}

}  // namespace

TEST_CASE("every sample validates and has events to replay", "[samples]") {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kSamples)) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    std::string name = entry.path().filename().string();
    INFO(name);
    load_sample(name, nullptr);
    std::string stem = entry.path().stem().string();
    bool has_events = false;
    for (const auto& e : std::filesystem::directory_iterator(kSamples + "/events"))
      has_events |= e.path().filename().string().rfind(stem + ".", 0) == 0;
    CHECK(has_events);
  }
  CHECK(count >= 3);
}

TEST_CASE("quickstart: variables carry from inbound to hangup", "[samples]") {
  auto config = load_sample("quickstart.yaml", nullptr);
  auto vars = replay(config, load_events("quickstart.json"));
  CHECK(vars["RESPONSE_RANK"] == "gold");
  CHECK(vars["RESPONSE_QUEUE"] == "priority");
  CHECK(vars["RESPONSE_NOTE"] == "missed call Q-0001 from 0312345678 (queue priority)");
}

TEST_CASE("RemoTEL section 2: unknown caller - answered", "[samples][kintone]") {
  FakeKintone kintone;
  setup_customer_app(kintone);
  kintone.insert_record(7, {{"電話番号", {{"value", "0300000000"}}}});  // someone else
  auto config = load_sample("remotel-api-token.yaml", &kintone);
  auto vars = replay(config, load_events("remotel-api-token.answered.json"));

  auto records = kintone.records(7);
  REQUIRE(records.size() == 2);
  const auto& created = records[1];
  CHECK(field(created, "電話番号") == "0312345678");
  std::string id = field(created, "$id");
  CHECK(vars["RESPONSE_ID"] == id);
  auto comments = kintone.comments(7, id);
  REQUIRE(comments.size() == 1);
  CHECK(comments[0]["text"] ==
        "通話がありました。https://pbx.example.jp:8000/monitor_link/20261122-0001");
  CHECK(kintone.comments(7, field(records[0], "$id")).empty());
}

TEST_CASE("RemoTEL section 2: known caller gets no new record", "[samples][kintone]") {
  FakeKintone kintone;
  setup_customer_app(kintone);
  std::string id = kintone.insert_record(7, {{"電話番号", {{"value", "0312345678"}}}});
  auto config = load_sample("remotel-api-token.yaml", &kintone);
  replay(config, load_events("remotel-api-token.answered.json"));
  CHECK(kintone.records(7).size() == 1);
  auto comments = kintone.comments(7, id);
  REQUIRE(comments.size() == 1);
  CHECK(comments[0]["text"].get<std::string>().find("monitor_link/20261122-0001") !=
        std::string::npos);
}

TEST_CASE("RemoTEL section 2: missed call", "[samples][kintone]") {
  FakeKintone kintone;
  setup_customer_app(kintone);
  auto config = load_sample("remotel-api-token.yaml", &kintone);
  replay(config, load_events("remotel-api-token.missed.json"));
  auto records = kintone.records(7);
  REQUIRE(records.size() == 1);
  CHECK(field(records[0], "電話番号") == "0399998888");
  auto comments = kintone.comments(7, field(records[0], "$id"));
  REQUIRE(comments.size() == 1);
  CHECK(comments[0]["text"] == "着信がありましたが、応答できませんでした");
}

TEST_CASE("RemoTEL section 3: known caller gets a linked inquiry", "[samples][kintone]") {
  FakeKintone kintone;
  setup_password_apps(kintone);
  kintone.insert_record(
      8, {{"電話番号", {{"value", "0612345678"}}}, {"会社名", {{"value", "大阪商事"}}}});
  auto config = load_sample("remotel-password.yaml", &kintone);
  auto vars = replay(config, load_events("remotel-password.callcenter.json"));
  CHECK(vars["RESPONSE_COMPANY_NAME"] == "大阪商事");
  CHECK(kintone.records(8).size() == 1);  // no new customer
  auto inquiries = kintone.records(7);
  REQUIRE(inquiries.size() == 1);
  CHECK(field(inquiries[0], "ルックアップ") == "大阪商事");
  CHECK(field(inquiries[0], "リンク") == "https://pbx.example.jp:8000/monitor_link/20261122-0101");
  // Every request carried the computed password header, never an API token.
  for (const auto& request : kintone.requests()) {
    CHECK(request.headers.count("x-cybozu-authorization") == 1);
    CHECK(request.headers.find("x-cybozu-authorization")->second ==
          rules::base64_encode("operator:s3cret-pass"));
  }
}

TEST_CASE("RemoTEL section 3: unknown caller becomes a customer with a comment",
          "[samples][kintone]") {
  FakeKintone kintone;
  setup_password_apps(kintone);
  auto config = load_sample("remotel-password.yaml", &kintone);
  replay(config, load_events("remotel-password.callcenter.json"));
  CHECK(kintone.records(7).empty());
  auto customers = kintone.records(8);
  REQUIRE(customers.size() == 1);
  CHECK(field(customers[0], "電話番号") == "0612345678");
  auto comments = kintone.comments(8, field(customers[0], "$id"));
  REQUIRE(comments.size() == 1);
  CHECK(comments[0]["text"] ==
        "通話がありました。https://pbx.example.jp:8000/monitor_link/20261122-0101");
}

TEST_CASE("hostile caller IDs land in kintone as literal text", "[samples][kintone][security]") {
  for (std::string hostile : {R"(1" or 電話番号 != ")", R"("},"x":{"value":"1)"}) {
    INFO(hostile);
    FakeKintone kintone;
    setup_customer_app(kintone);
    kintone.insert_record(7, {{"電話番号", {{"value", "0311112222"}}}});
    auto config = load_sample("remotel-api-token.yaml", &kintone);
    rules::EventInput inbound = load_events("remotel-api-token.answered.json")[0];
    inbound.tel = hostile;
    std::vector<rules::RuleOutcome> outcomes;
    auto vars = replay(config, {inbound}, &outcomes);
    // The search found nobody, so a customer was created with the literal number.
    CHECK(vars["RESPONSE_COUNT"] == "0");
    auto records = kintone.records(7);
    REQUIRE(records.size() == 2);
    CHECK(field(records[1], "電話番号") == hostile);
    CHECK_FALSE(records[1].contains("x"));
  }
}

TEST_CASE("the typed kintone sample leaves kintone as the raw RemoTEL sample does",
          "[samples][kintone]") {
  for (std::string events : {"remotel-api-token.answered.json", "remotel-api-token.missed.json"}) {
    for (bool known : {false, true}) {
      INFO(events << (known ? ", known caller" : ", unknown caller"));
      // The same call, replayed once per sample, each against its own fake kintone.
      std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> states;
      for (std::string sample : {"remotel-api-token.yaml", "kintone-typed.yaml"}) {
        FakeKintone kintone;
        setup_customer_app(kintone);
        kintone.insert_record(7, {{"電話番号", {{"value", "0300000000"}}}});  // someone else
        if (known) {
          auto tel = load_events(events)[0].tel;
          kintone.insert_record(7, {{"電話番号", {{"value", tel}}}});
        }
        auto config = load_sample(sample, &kintone);
        replay(config, load_events(events));
        std::vector<std::string> phones, comments;
        for (const auto& record : kintone.records(7)) {
          phones.push_back(field(record, "$id") + ":" + field(record, "電話番号"));
          for (const auto& c : kintone.comments(7, field(record, "$id")))
            comments.push_back(field(record, "$id") + ":" + c["text"].get<std::string>());
        }
        states.emplace_back(phones, comments);
      }
      CHECK(states[0].first == states[1].first);
      CHECK(states[0].second == states[1].second);
      CHECK(states[0].second.size() == 1);
    }
  }
}
