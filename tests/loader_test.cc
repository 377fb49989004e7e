#include <catch2/catch.hpp>

#include "bridge/connectors.h"
#include "rules/config.h"

using namespace callbridge::rules;

namespace {

std::optional<std::string> test_env(std::string_view name) {
  if (name == "KINTONE_TOKEN") return std::string("tok-1234567890");
  if (name == "LOGIN") return std::string("operator");
  if (name == "PASSWORD") return std::string("pa55word!");
  return std::nullopt;
}

LoadResult load(std::string_view yaml) {
  return load_config_text(yaml, "test.yaml", test_env, callbridge::bridge::connector_registry());
}

std::vector<std::string> messages(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& d : r.errors) out.push_back(d.format());
  return out;
}

}  // namespace

TEST_CASE("a complete call action loads field by field", "[loader]") {
  auto r = load(R"y(
rules:
  - name: create-customer
    event: 着信
    order: 2
    when: { code: "{RESPONSE_COUNT}", pattern: "/^0$/" }
    request:
      method: post
      url: https://example.cybozu.com/k/v1/record.json
      headers:
        X-Cybozu-API-Token: ${KINTONE_TOKEN}
        Content-Type: application/json
      body: |
        {"app": 7, "record": {"電話番号": {"value": "{TEL}"}}}
      timeout: 10
    extract: '/"id":"(?P<ID>[0-9]+)",/'
    memo: 新規顧客
)y");
  INFO(messages(r).size());
  REQUIRE(r.config);
  const auto& rules = r.config->rules->all();
  REQUIRE(rules.size() == 1);
  const Rule& rule = rules[0];
  CHECK(rule.name == "create-customer");
  CHECK(rule.event == "inbound");
  CHECK(rule.order == 2);
  CHECK(rule.request.method == "POST");
  CHECK(rule.request.timeout == std::chrono::seconds(10));
  CHECK(rule.request.body.destination() == Destination::json);
  REQUIRE(rule.when);
  REQUIRE(rule.extract);
  CHECK(rule.extract->group_names() == std::vector<std::string>{"ID"});
  CHECK(rule.memo == "新規顧客");
  CHECK(r.config->secrets->redact("x tok-1234567890 y") == "x [secret] y");
}

TEST_CASE("rules of an event sort by order - ties in file order", "[loader]") {
  auto r = load(R"y(
rules:
  - { name: c, event: hangup, order: 2, request: { url: "response://c" } }
  - { name: a, event: 切断, order: 1, request: { url: "response://a" } }
  - { name: b, event: 着信切断, order: 2, request: { url: "response://b" } }
  - { name: x, event: my.custom-event, request: { url: "response://x" } }
)y");
  REQUIRE(r.config);
  std::vector<std::string> names;
  for (const Rule* rule : r.config->rules->for_event("hangup")) names.push_back(rule->name);
  CHECK(names == std::vector<std::string>{"a", "c", "b"});
  CHECK(r.config->rules->for_event("my.custom-event").size() == 1);
}

TEST_CASE("five different mistakes give five located errors", "[loader]") {
  auto r = load(R"y(rules:
  - name: one
    event: 着信中
    request: { url: "https://x.example/" }
  - name: two
    event: inbound
    request: { url: "https://x.example/", timeout: 0 }
    extract: '/(?P<ID>[0-9]+/'
  - name: three
    event: inbound
    colour: blue
    request: { url: "https://x.example/${NOT_SET}" }
)y");
  CHECK_FALSE(r.config);
  auto m = messages(r);
  REQUIRE(m.size() == 5);
  CHECK(m[0].rfind("test.yaml:3:12: error: unknown event \"着信中\"; known: inbound (着信)", 0) ==
        0);
  CHECK(m[1] == "test.yaml:7:52: error: \"request.timeout\": must be between 1 and 300, got 0");
  CHECK(m[2].rfind("test.yaml:8:", 0) == 0);
  CHECK(m[2].find("bad pattern at offset 14: missing closing parenthesis") != std::string::npos);
  CHECK(m[3].rfind("test.yaml:11:5: error: unknown key \"rule.colour\"; known: name, event", 0) ==
        0);
  CHECK(m[4] ==
        "test.yaml:12:40: error: \"request.url\": environment variable ${NOT_SET} is not set");
  // Missing name is the sixth kind; here it is one of many when keys are absent.
  auto missing = load("rules:\n  - event: inbound\n    request: { url: \"https://x.example/\" }\n");
  REQUIRE(missing.errors.size() == 1);
  CHECK(missing.errors[0].format() ==
        "test.yaml:2:5: error: rule is missing required key \"name\"");
}

TEST_CASE("strictness: duplicates - methods - URLs - bodies - auth", "[loader]") {
  auto r = load(R"y(
server: { listen: "nonsense", tokens: ["short"] }
rules:
  - { name: a, event: inbound, request: { url: "ftp://x/" } }
  - { name: a, event: inbound, request: { url: "https://x/", method: FETCH } }
  - name: b
    event: inbound
    request:
      url: https://x/
      headers: { Content-Type: application/json }
      body: '{"app": 7,, }'
  - { name: c, event: inbound, request: { url: "https://x/", auth: { type: oauth } } }
  - { name: d, event: inbound, when: { code: "{X}" }, request: { url: "https://x/" } }
)y");
  CHECK_FALSE(r.config);
  std::string all;
  for (const auto& m : messages(r)) all += m + "\n";
  CHECK(all.find("\"server.listen\": must be HOST:PORT") != std::string::npos);
  CHECK(all.find("a token must be at least 16 characters") != std::string::npos);
  CHECK(all.find("must start with http://, https:// or response://") != std::string::npos);
  CHECK(all.find("duplicate rule name \"a\"") != std::string::npos);
  CHECK(all.find("must be one of GET, POST, PUT, PATCH, DELETE, got \"FETCH\"") !=
        std::string::npos);
  CHECK(all.find("body is not valid JSON") != std::string::npos);
  CHECK(all.find("unknown auth type \"oauth\"") != std::string::npos);
  CHECK(all.find("\"when\" is missing required key \"pattern\"") != std::string::npos);
}

TEST_CASE("kintone password auth computes the header and keeps it secret", "[loader][secrets]") {
  auto r = load(R"y(
rules:
  - name: a
    event: inbound
    request:
      url: https://x.example/k/v1/record.json
      auth: { type: kintone-password, login: "${LOGIN}", password: "${PASSWORD}" }
)y");
  REQUIRE(r.config);
  const auto& headers = r.config->rules->all()[0].request.headers;
  REQUIRE(headers.size() == 1);
  CHECK(headers[0].name == "X-Cybozu-Authorization");
  CHECK(headers[0].secret);
  RenderReport report;
  CHECK(headers[0].value.render({}, report) == base64_encode("operator:pa55word!"));
}

TEST_CASE("secret values never appear in error messages", "[loader][secrets]") {
  auto r = load(R"y(
server: { listen: "${KINTONE_TOKEN}" }
)y");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message.find("tok-1234567890") == std::string::npos);
}

TEST_CASE("YAML syntax errors are located", "[loader]") {
  auto r = load("rules:\n  - name: [unclosed\n");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].location.line >= 2);
}
