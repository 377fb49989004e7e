// The kintone connector's YAML (section and typed action), the action run by the engine, and
// the service's enrich, routes and metrics, against the fake kintone.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "connectors/kintone/action.h"
#include "connectors/kintone/register.h"
#include "connectors/kintone/service.h"
#include "http/http_client.h"
#include "rules/config.h"
#include "rules/engine.h"
#include "rules/registry.h"
#include "tests/fakes/fake_kintone.h"

using namespace callbridge;
using callbridge::testing::FakeKintone;
using nlohmann::json;

namespace {

const std::string kSamples = std::string(CALLBRIDGE_SOURCE_DIR) + "/samples";

const rules::Registry& registry() {
  static const rules::Registry r = [] {
    rules::Registry reg;
    kintone::register_connector(reg);
    return reg;
  }();
  return r;
}

std::optional<std::string> env(std::string_view name) {
  if (name == "KINTONE_CUSTOMER_TOKEN") return std::string("customer-token-7");
  if (name == "KINTONE_HISTORY_TOKEN") return std::string("history-token-15");
  if (name == "KINTONE_OAUTH_CLIENT_SECRET") return std::string("oauth-client-secret");
  if (name == "KINTONE_LOGIN") return std::string("operator");
  if (name == "KINTONE_PASSWORD") return std::string("s3cret-pass");
  return std::nullopt;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
    text.replace(pos, from.size(), to);
  return text;
}

rules::LoadResult load(const std::string& yaml) {
  return rules::load_config_text(yaml, "test.yaml", env, registry());
}

rules::Config load_ok(const std::string& yaml) {
  auto r = load(yaml);
  for (const auto& e : r.errors) UNSCOPED_INFO(e.format());
  REQUIRE(r.config);
  return std::move(*r.config);
}

rules::Config load_sample(const std::string& name, const FakeKintone& k) {
  return load_ok(
      replace_all(read(kSamples + "/" + name), "https://example.cybozu.com", k.base_url()));
}

std::string all_errors(const rules::LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.format() + "\n";
  return out;
}

rules::EventInput event(std::string name, std::string call, std::string tel,
                        std::optional<bool> answered = std::nullopt) {
  rules::EventInput e;
  e.event = std::move(name);
  e.call_id = std::move(call);
  e.tel = std::move(tel);
  e.answered = answered;
  return e;
}

std::string field(const json& record, const std::string& code) {
  if (!record.contains(code)) return "<absent>";
  const auto& v = record[code]["value"];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

const std::string kHeader = R"(
kintone:
  connections:
    customers:
      url: http://127.0.0.1:1
      api_token: ${KINTONE_CUSTOMER_TOKEN}
)";

}  // namespace

TEST_CASE("kintone config: a section and typed actions load", "[kintone-connector]") {
  auto config = load_ok(kHeader + R"(
    other:
      url: https://other.cybozu.com
      guest_space: 12
      login: bridge
      password: ${KINTONE_PASSWORD}
      basic_auth: { user: proxy, password: "${KINTONE_PASSWORD}" }
      max_concurrency: 4
      retry: { attempts: 2, backoff_ms: 50 }
  directory:
    connection: customers
    app: 14
    phone_fields: [電話番号, 携帯番号]
    name_field: 顧客名
    interval_seconds: 600
rules:
  - name: find
    event: inbound
    kintone:
      connection: customers
      app: 7
      where: { 会社名: "{COMPANY}", 区分: [A, B] }
      fields: [record_no, 会社名]
      results: { COMPANY_NAME: 会社名 }
  - name: upsert
    event: hangup
    kintone:
      connection: other
      app: 15
      op: upsert
      update_key: { field: 通話ID, value: "{ID}" }
      record: { 通話ID: "{ID}", 電話番号: { value: "{TEL}" }, タグ: [a, "{EVENT}"] }
)");
  auto s = config.section<kintone::KintoneSettings>("kintone");
  REQUIRE(s);
  REQUIRE(s->connections.size() == 2);
  const auto& other = s->connection("other")->connection;
  CHECK(other.guest_space == 12);
  CHECK(other.auth.login == "bridge");
  CHECK(other.auth.basic_user == "proxy");
  CHECK(other.max_concurrency == 4);
  CHECK(other.retry.attempts == 2);
  REQUIRE(s->directory);
  CHECK(s->directory->phone_fields == std::vector<std::string>{"電話番号", "携帯番号"});
  CHECK(s->directory->interval == std::chrono::seconds(600));
  const auto& rules = config.rules->all();
  REQUIRE(rules.size() == 2);
  REQUIRE(rules[0].action);
  CHECK(rules[0].action->describe() == "kintone.find app 7 on customers");
  CHECK(rules[0].action->idempotent());
  CHECK(rules[1].action->describe() == "kintone.upsert app 15 on other");
  CHECK(rules[1].action->idempotent());
}

TEST_CASE("kintone config: every mistake is reported with its place", "[kintone-connector]") {
  auto r = load(R"(
kintone:
  connections:
    customers:
      url: https://example.cybozu.com/k/v1/records.json
      api_token: abc
      login: x
      password: y
      timeout: 0
    empty:
      url: https://e.cybozu.com
    "bad name":
      url: https://e.cybozu.com
      api_token: t
  directory:
    connection: nowhere
    app: 14
rules:
  - name: a
    event: inbound
    kintone: { connection: crm, app: 7 }
  - name: b
    event: inbound
    kintone: { connection: customers, app: 7, op: get }
  - name: c
    event: inbound
    kintone: { connection: customers, app: 7, op: create, record: { "a b": "{TEL}" }, id: "1" }
  - name: d
    event: inbound
    kintone: { connection: customers, app: 7, op: update, record: { x: "1" } }
  - name: e
    event: inbound
    kintone: { connection: customers, app: 7, op: delete }
)");
  CHECK_FALSE(r.config);
  std::string errors = all_errors(r);
  INFO(errors);
  for (const char* expected : {
           "without /k/v1",
           "choose one of api_token(s), login/password and oauth",
           "\"kintone.connections.customers.timeout\": must be between 1 and 300, got 0",
           "\"kintone.connections.empty\": needs credentials",
           "must be letters, digits, - and _",
           "unknown kintone connection \"nowhere\"",
           "\"kintone.directory\" is missing required key \"phone_fields\"",
       }) {
    CHECK(errors.find(expected) != std::string::npos);
  }
  // The section is invalid, so rules cannot resolve their connections: loading continues and
  // says so instead of stopping at the first error.
  CHECK(errors.find("test.yaml:5:") != std::string::npos);

  auto rules_only = load(kHeader + R"(
rules:
  - name: a
    event: inbound
    kintone: { connection: crm, app: 7 }
  - name: b
    event: inbound
    kintone: { connection: customers, app: 7, op: get }
  - name: c
    event: inbound
    kintone: { app: 7, op: create, record: { "a b": "{TEL}" }, id: "1" }
  - name: d
    event: inbound
    kintone: { app: 7, op: update, record: { x: "1" } }
  - name: e
    event: inbound
    kintone: { app: 7, op: delete }
  - name: f
    event: inbound
    kintone: { app: 7, fields: [会社名], limit: 501, colour: red }
)");
  CHECK_FALSE(rules_only.config);
  errors = all_errors(rules_only);
  INFO(errors);
  for (const char* expected : {
           "unknown kintone connection \"crm\"; known: customers",
           "op get needs \"kintone.id\"",
           "\"a b\" is not a kintone field code",
           "\"kintone.id\" is not used by op create",
           "op update needs exactly one of \"kintone.id\" and \"kintone.update_key\"",
           "\"kintone.op\": unknown value \"delete\"",
           "\"kintone.limit\": must be between 1 and 500, got 501",
           "unknown key \"kintone.colour\"",
       }) {
    CHECK(errors.find(expected) != std::string::npos);
  }

  auto no_section = load(R"(
rules:
  - name: a
    event: inbound
    kintone: { app: 7 }
)");
  CHECK(all_errors(no_section).find("needs a top-level \"kintone:\" section") != std::string::npos);
}

TEST_CASE("kintone action: the typed RemoTEL flow against the fake", "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7, "record_no");
  k.add_api_token(7, "customer-token-7");
  auto config = load_sample("kintone-typed.yaml", k);
  http::HttpClient transport;
  rules::Engine engine(config.rules, config.secrets, &transport);

  SECTION("unknown caller: created, then the recording comment") {
    rules::CallContext call;
    for (auto& o : engine.run(event("inbound", "C1", "+81-3-1234-5678", false), call)) {
      INFO(o.rule << ": " << o.error);
      CHECK(o.status == rules::RuleStatus::succeeded);
    }
    CHECK(call.vars["RESPONSE_COUNT"] == "0");
    CHECK(call.vars["RESPONSE_ID"] == "1");
    for (auto& o : engine.run(event("hangup", "C1", "", true), call)) {
      INFO(o.rule << ": " << o.error);
      CHECK((o.status == rules::RuleStatus::succeeded || o.status == rules::RuleStatus::skipped));
    }
    auto records = k.records(7);
    REQUIRE(records.size() == 1);
    CHECK(field(records[0], "電話番号") == "+81-3-1234-5678");  // as the caller ID came
    auto comments = k.comments(7, "1");
    REQUIRE(comments.size() == 1);
    CHECK(comments[0]["text"] == "通話がありました。https://pbx.example.jp:8000/monitor_link/C1");
  }

  SECTION("known caller, written differently: found, nothing created, missed-call comment") {
    k.insert_record(7, {{"電話番号", {{"value", "03-1234-5678"}}}});
    rules::CallContext call;
    auto outcomes = engine.run(event("inbound", "C2", "0312345678", false), call);
    REQUIRE(outcomes.size() == 2);
    CHECK(outcomes[0].status == rules::RuleStatus::succeeded);
    CHECK(outcomes[0].extracted.at("RESPONSE_RECORD_NO") == "1");
    CHECK(outcomes[1].status == rules::RuleStatus::skipped);
    CHECK(call.vars["RESPONSE_COUNT"] == "1");
    CHECK(call.vars["RESPONSE_ID"] == "1");
    CHECK(call.vars["RESPONSE_STATUS"] == "200");
    engine.run(event("hangup", "C2", "", false), call);
    CHECK(k.records(7).size() == 1);
    auto comments = k.comments(7, "1");
    REQUIRE(comments.size() == 1);
    CHECK(comments[0]["text"] == "着信がありましたが、応答できませんでした");
  }

  SECTION("withheld and hostile caller IDs: nothing found, nothing created, nothing widened") {
    k.insert_record(7, {{"電話番号", {{"value", "03-1234-5678"}}}});
    for (std::string tel : {"anonymous", "非通知", "\" or 電話番号 != \"", "1\" or $id > \"0"}) {
      INFO(tel);
      rules::CallContext call;
      auto outcomes = engine.run(event("inbound", "H-" + tel, tel, false), call);
      CHECK(outcomes[0].status == rules::RuleStatus::succeeded);
      CHECK_FALSE(outcomes[0].sent);  // no number, no question to kintone
      CHECK(call.vars["RESPONSE_COUNT"] == "0");
      CHECK(outcomes[1].status == rules::RuleStatus::skipped);
    }
    CHECK(k.records(7).size() == 1);
  }
}

TEST_CASE("kintone action: where values are quoted, whatever they contain", "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7, "record_no");
  k.add_api_token(7, "customer-token-7");
  k.insert_record(7, {{"電話番号", {{"value", "0312345678"}}}, {"会社名", {{"value", "A社"}}}});
  auto config = load_ok(replace_all(kHeader, "http://127.0.0.1:1", k.base_url()) + R"(
rules:
  - name: find
    event: inbound
    kintone:
      app: 7
      where: { 電話番号: "{TEL}" }
      query: '会社名 like {COMPANY|query}'
      results: { COMPANY: 会社名 }
)");
  http::HttpClient transport;
  rules::Engine engine(config.rules, config.secrets, &transport);
  for (std::string hostile : {"\" or 電話番号 != \"", "0312345678\" or \"1\" = \"1"}) {
    rules::CallContext call;
    auto e = event("inbound", "Q", hostile);
    e.vars["COMPANY"] = "\") or (会社名 != \"";
    auto outcomes = engine.run(e, call);
    INFO(outcomes[0].error);
    CHECK(outcomes[0].status == rules::RuleStatus::succeeded);
    CHECK(call.vars["RESPONSE_COUNT"] == "0");
    CHECK_FALSE(call.vars.count("RESPONSE_COMPANY"));
  }
  rules::CallContext call;
  auto e = event("inbound", "Q2", "0312345678");
  e.vars["COMPANY"] = "A";
  engine.run(e, call);
  CHECK(call.vars["RESPONSE_COUNT"] == "1");
  CHECK(call.vars["RESPONSE_COMPANY"] == "A社");
  auto requests = k.requests();
  std::string query;
  for (const auto& [key, value] : requests.front().params)
    if (key == "query") query = value;
  CHECK(query ==
        R"(電話番号 = "\" or 電話番号 != \"" and (会社名 like "\") or (会社名 != \"") limit 1)");
}

TEST_CASE("kintone action: placeholders in free query text are escaped as values",
          "[kintone-connector][query]") {
  FakeKintone k;
  k.add_app(7, "record_no");
  k.add_api_token(7, "customer-token-7");
  k.insert_record(7, {{"会社名", {{"value", "A社"}}}, {"担当", {{"value", "佐藤"}}}});
  k.insert_record(7, {{"会社名", {{"value", "B社"}}}, {"担当", {{"value", "鈴木"}}}});
  auto rules_with = [&](const std::string& query) {
    return replace_all(kHeader, "http://127.0.0.1:1", k.base_url()) +
           "rules:\n  - name: find\n    event: inbound\n    kintone:\n      app: 7\n"
           "      query: '" +
           query + "'\n";
  };
  // Bare, inside a literal, and after a literal in the same text: each is a value.
  for (std::string query : {"会社名 = {COMPANY}", "会社名 like \"{COMPANY}\"",
                            "担当 = \"佐藤\" and 会社名 = {COMPANY}"}) {
    INFO(query);
    auto result = load(rules_with(query));
    REQUIRE(result.config);
    bool noted = false;
    for (const auto& n : result.notes)
      noted = noted || n.format().find("{COMPANY} is escaped for kintone's query language") !=
                           std::string::npos;
    CHECK(noted);
    http::HttpClient transport;
    rules::Engine engine(result.config->rules, result.config->secrets, &transport);
    for (std::string hostile :
         {"\" or 会社名 != \"", "x\") or (会社名 != \"", "x or 1 = 1", "\\"}) {
      INFO(hostile);
      rules::CallContext call;
      auto e = event("inbound", "Q", "0312345678");
      e.vars["COMPANY"] = hostile;
      auto outcomes = engine.run(e, call);
      INFO(outcomes[0].error);
      CHECK(outcomes[0].status == rules::RuleStatus::succeeded);
      CHECK(call.vars["RESPONSE_COUNT"] == "0");
    }
    rules::CallContext call;
    auto e = event("inbound", "Q2", "0312345678");
    e.vars["COMPANY"] = "A社";
    engine.run(e, call);
    CHECK(call.vars["RESPONSE_COUNT"] == "1");
  }
  // |raw is the explicit opt-out: the value is query text.
  auto raw = load_ok(rules_with("会社名 = \"A社\" or {EXTRA|raw}"));
  http::HttpClient transport;
  rules::Engine engine(raw.rules, raw.secrets, &transport);
  rules::CallContext call;
  auto e = event("inbound", "Q3", "0312345678");
  e.vars["EXTRA"] = "会社名 = \"B社\"";
  engine.run(e, call);
  CHECK(call.vars["RESPONSE_COUNT"] == "2");
}

TEST_CASE("kintone action: dry run shows the request with secrets hidden and sends nothing",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7, "record_no");
  auto config = load_sample("kintone-typed.yaml", k);
  rules::Engine engine(config.rules, config.secrets, nullptr);
  rules::CallContext call;
  auto outcomes = engine.run(event("inbound", "D1", "0312345678", false), call);
  REQUIRE(outcomes.size() == 2);
  REQUIRE(outcomes[0].request);
  const auto& shown = *outcomes[0].request;
  CHECK(shown.method == "GET");
  CHECK(shown.url.find(k.base_url() + "/k/v1/records.json?app=7&") == 0);
  // (電話番号 in ("0312345678", "03-1234-5678", ...)) limit 1
  CHECK(shown.url.find("&query=%28%E9%9B%BB%E8%A9%B1%E7%95%AA%E5%8F%B7%20in%20%28%220312345678%22%"
                       "2C%20%2203-1234-5678%22") != std::string::npos);
  CHECK(shown.url.find("customer-token-7") == std::string::npos);
  bool token_hidden = false;
  for (const auto& [name, value] : shown.headers)
    if (name == "X-Cybozu-API-Token") token_hidden = value == "[secret]";
  CHECK(token_hidden);
  CHECK_FALSE(outcomes[0].sent);
  CHECK(k.requests().empty());
}

TEST_CASE("kintone action: throttling is retried, validation errors are final",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7, "record_no");
  k.add_api_token(7, "customer-token-7");
  auto config = load_ok(replace_all(kHeader, "http://127.0.0.1:1", k.base_url()) +
                        R"(      retry: { attempts: 1 }
rules:
  - name: create
    event: inbound
    kintone: { app: 7, op: create, record: { 電話番号: "{TEL}" } }
)");
  http::HttpClient transport;
  rules::Engine engine(config.rules, config.secrets, &transport);
  k.fail_next(1, 429, R"({"code":"CB_TO01","id":"x","message":"busy"})");
  rules::CallContext call;
  auto o = engine.run(event("inbound", "R1", "0312345678"), call)[0];
  CHECK(o.status == rules::RuleStatus::http_error);
  CHECK(o.retryable == std::optional<bool>(true));  // a 429 applied nothing: safe to repeat
  CHECK(call.vars["RESPONSE_ERROR"] == "CB_TO01");
  CHECK(call.vars["RESPONSE_STATUS"] == "429");

  k.fail_next(
      1, 400,
      R"({"code":"CB_VA01","id":"y","message":"入力内容が正しくありません。","errors":{"record.電話番号.value":{"messages":["必須です。"]}}})");
  o = engine.run(event("inbound", "R2", "0312345678"), call)[0];
  CHECK(o.retryable == std::optional<bool>(false));
  CHECK(o.error.find("record.電話番号.value: 必須です。") != std::string::npos);

  o = engine.run(event("inbound", "R3", "0312345678"), call)[0];
  CHECK(o.status == rules::RuleStatus::succeeded);
  CHECK_FALSE(call.vars.count("RESPONSE_ERROR"));
  CHECK(k.records(7).size() == 1);
}

TEST_CASE("kintone service: directory enrichment, history app, on-demand sync and OAuth routes",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(14, "record_no");
  k.add_app(15, "record_no");
  k.add_api_token(14, "customer-token-7");
  k.add_api_token(15, "history-token-15");
  k.insert_record(14, {{"電話番号", {{"value", "03-1234-5678"}}},
                       {"顧客名", {{"value", "山田 太郎"}}},
                       {"会社名", {{"value", "山田商事"}}}});
  auto config = load_sample("callconnect.yaml", k);
  auto settings =
      std::dynamic_pointer_cast<const kintone::KintoneSettings>(config.sections.at("kintone"));
  http::HttpClient transport;
  std::vector<std::string> log;
  auto service = std::make_shared<kintone::KintoneService>(
      settings, transport, nullptr, [&](const std::string& l) { log.push_back(l); });
  rules::Services services;
  services.add("kintone", service);

  // The first sync, on demand, waiting for it.
  auto routes = service->routes();
  auto route = [&](const std::string& method, const std::string& path) -> rules::Route& {
    for (auto& r : routes)
      if (r.method == method && std::regex_match(path, std::regex(r.pattern))) return r;
    FAIL("no route " + method + " " + path);
    return routes.front();
  };
  rules::HttpRequest sync_request;
  sync_request.method = "POST";
  sync_request.path = "/v1/kintone/directory/sync";
  sync_request.params.emplace("wait", "1");
  rules::HttpResponse sync_response;
  route("POST", sync_request.path).handler(sync_request, sync_response);
  INFO(sync_response.body);
  CHECK(sync_response.status == 200);
  CHECK(json::parse(sync_response.body)["customers"] == 1);

  rules::Engine engine(config.rules, config.secrets, &transport, &services);
  auto run = [&](rules::EventInput e, rules::CallContext& call) {
    service->enrich(e, call.vars);
    return engine.run(e, call);
  };

  rules::CallContext known;
  auto outcomes = run(event("inbound", "CC-1", "+81-3-1234-5678", false), known);
  CHECK(known.vars["CUSTOMER_FOUND"] == "1");
  CHECK(known.vars["CUSTOMER_NAME"] == "山田 太郎");
  CHECK(known.vars["CUSTOMER_COMPANY"] == "山田商事");
  CHECK(known.vars["CUSTOMER_TEL"] == "03-1234-5678");
  CHECK(outcomes[0].status == rules::RuleStatus::skipped);
  CHECK(outcomes[1].status == rules::RuleStatus::skipped);
  auto hangup = event("hangup", "CC-1", "", true);
  hangup.vars["RECORDING_URL"] = "https://pbx.example.jp/rec/CC-1.mp3";
  for (auto& o : run(hangup, known)) {
    INFO(o.rule << ": " << o.error);
    CHECK(o.status == rules::RuleStatus::succeeded);
  }
  CHECK(known.vars["CUSTOMER_FOUND"] == "1");  // a hangup without TEL keeps the call's values

  rules::CallContext unknown;
  run(event("inbound", "CC-2", "090-5555-0000", false), unknown);
  CHECK(unknown.vars["CUSTOMER_FOUND"] == "0");
  CHECK(unknown.vars["RESPONSE_COUNT"] == "0");
  run(event("hangup", "CC-2", "", false), unknown);
  // Retried after a crash: the keyed history write updates instead of duplicating.
  run(event("hangup", "CC-2", "", false), unknown);

  CHECK(k.records(14).size() == 2);
  CHECK(field(k.records(14)[1], "電話番号") == "090-5555-0000");
  auto history = k.records(15);
  REQUIRE(history.size() == 2);
  CHECK(field(history[0], "通話ID") == "CC-1");
  CHECK(field(history[0], "顧客名") == "山田 太郎");
  CHECK(field(history[0], "録音URL") == "https://pbx.example.jp/rec/CC-1.mp3");
  CHECK(field(history[1], "通話ID") == "CC-2");
  CHECK(field(history[1], "応答") == "0");

  // The new customer reaches the directory on the next sync.
  sync_response = {};
  route("POST", sync_request.path).handler(sync_request, sync_response);
  rules::CallContext again;
  run(event("inbound", "CC-3", "09055550000", false), again);
  CHECK(again.vars["CUSTOMER_FOUND"] == "1");
  CHECK(again.vars["CUSTOMER_TEL"] == "090-5555-0000");

  std::string metrics;
  service->metrics(metrics);
  CHECK(metrics.find("callbridge_kintone_requests_today{connection=\"crm\",app=\"15\"} 3") !=
        std::string::npos);
  CHECK(metrics.find("callbridge_kintone_directory_customers{connection=\"crm\",app=\"14\"} 2") !=
        std::string::npos);
  CHECK(metrics.find("customer-token-7") == std::string::npos);
}

TEST_CASE("kintone service: OAuth start and callback routes", "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7, "record_no");
  const std::string redirect = "https://bridge.example.com/v1/kintone/oauth/crm/callback";
  k.add_oauth_client("callbridge", "oauth-client-secret", redirect);
  k.insert_record(7, {{"電話番号", {{"value", "03-1234-5678"}}}, {"会社名", {{"value", "C社"}}}});
  auto config = load_sample("kintone-oauth.yaml", k);
  auto settings =
      std::dynamic_pointer_cast<const kintone::KintoneSettings>(config.sections.at("kintone"));
  http::HttpClient transport;
  auto service = std::make_shared<kintone::KintoneService>(settings, transport, nullptr,
                                                           [](const std::string&) {});
  rules::Services services;
  services.add("kintone", service);
  auto routes = service->routes();
  auto call_route = [&](const std::string& path, std::multimap<std::string, std::string> params) {
    for (auto& r : routes) {
      std::smatch m;
      if (r.method == "GET" && std::regex_match(path, m, std::regex(r.pattern))) {
        rules::HttpRequest req;
        req.method = "GET";
        req.path = path;
        for (const auto& g : m) req.matches.push_back(g.str());
        req.params = std::move(params);
        rules::HttpResponse res;
        r.handler(req, res);
        CHECK(r.auth == (path.find("callback") != std::string::npos ? rules::RouteAuth::none
                                                                    : rules::RouteAuth::token));
        return res;
      }
    }
    FAIL("no route for " + path);
    return rules::HttpResponse{};
  };

  rules::Engine engine(config.rules, config.secrets, &transport, &services);
  rules::CallContext before;
  auto o = engine.run(event("inbound", "OA-0", "0312345678"), before)[0];
  CHECK(o.status == rules::RuleStatus::failed);
  CHECK(o.error.find("/v1/kintone/oauth/crm/start") != std::string::npos);

  auto start = call_route("/v1/kintone/oauth/crm/start", {});
  REQUIRE(start.status == 302);
  std::string location;
  for (const auto& [n, v] : start.headers)
    if (n == "Location") location = v;
  REQUIRE(location.rfind(k.base_url() + "/oauth2/authorization?", 0) == 0);
  auto granted = transport.perform({"GET", location, {}, "", std::chrono::seconds(5)});
  REQUIRE(granted.status == 302);
  std::string back;
  for (const auto& [n, v] : granted.headers)
    if (n == "Location" || n == "location") back = v;
  auto q = back.substr(back.find('?') + 1);
  std::multimap<std::string, std::string> params;
  std::stringstream ss(q);
  for (std::string part; std::getline(ss, part, '&');) {
    auto eq = part.find('=');
    params.emplace(part.substr(0, eq), part.substr(eq + 1));
  }
  auto forged = params;
  forged.find("state")->second = "forged";
  CHECK(call_route("/v1/kintone/oauth/crm/callback", forged).status == 400);
  auto done = call_route("/v1/kintone/oauth/crm/callback", params);
  INFO(done.body);
  CHECK(done.status == 200);
  CHECK(done.body.find("oauth-client-secret") == std::string::npos);

  rules::CallContext after;
  o = engine.run(event("inbound", "OA-1", "0312345678"), after)[0];
  INFO(o.error);
  CHECK(o.status == rules::RuleStatus::succeeded);
  CHECK(after.vars["RESPONSE_COMPANY"] == "C社");
  std::string metrics;
  service->metrics(metrics);
  CHECK(metrics.find("callbridge_kintone_oauth_authorized{connection=\"crm\"} 1") !=
        std::string::npos);
}
