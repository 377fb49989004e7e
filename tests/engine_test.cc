#include "rules/engine.h"

#include <catch2/catch.hpp>
#include <functional>
#include <mutex>

#include "bridge/connectors.h"

using namespace callbridge;
using namespace callbridge::rules;

namespace {

// A scripted transport: records requests and answers from a function.
class ScriptedTransport : public http::Transport {
 public:
  std::function<http::Outcome(const http::Request&)> answer;
  std::vector<http::Request> seen;
  http::Outcome perform(const http::Request& request) override {
    seen.push_back(request);
    return answer(request);
  }
};

http::Outcome reply(int status, std::string body) {
  http::Outcome o;
  o.kind = http::OutcomeKind::response;
  o.status = status;
  o.body = std::move(body);
  o.maybe_sent = true;
  return o;
}

std::optional<std::string> test_env(std::string_view name) {
  if (name == "TOKEN") return std::string("tok-abcdefghijkl");
  return std::nullopt;
}

std::shared_ptr<const RuleSet> rules_from(const std::string& yaml,
                                          std::shared_ptr<const SecretSet>* secrets = nullptr) {
  auto r = load_config_text(yaml, "t.yaml", test_env, bridge::connector_registry());
  for (const auto& e : r.errors) INFO(e.format());
  REQUIRE(r.config);
  if (secrets) *secrets = r.config->secrets;
  return r.config->rules;
}

EventInput event(std::string name, std::string call, std::string tel = "",
                 std::optional<bool> answered = std::nullopt) {
  EventInput e;
  e.event = std::move(name);
  e.call_id = std::move(call);
  e.tel = std::move(tel);
  e.answered = answered;
  return e;
}

const char* kFlow = R"yaml(
rules:
  - name: find
    event: inbound
    order: 1
    request:
      url: https://crm.example/k/v1/records.json
      headers: { X-Cybozu-API-Token: "${TOKEN}", Content-Type: application/json }
      body: '{"app": 7, "query": "電話番号 = {TEL|query}"}'
    extract: '/("value":"(?P<ID>[0-9]+)"}}],)*"totalCount":"(?P<COUNT>[0-9]+)"/'
  - name: create
    event: inbound
    order: 2
    when: { code: "{RESPONSE_COUNT}", pattern: "/^0$/" }
    request:
      method: POST
      url: https://crm.example/k/v1/record.json
      body: '{"app": 7, "record": {"電話番号": {"value": "{TEL}"}}}'
    extract: '/"id":"(?P<ID>[0-9]+)",/'
  - name: comment
    event: hangup
    when: { code: "{ISANSWERED}", pattern: "/^1$/" }
    request:
      method: POST
      url: https://crm.example/k/v1/record/comment.json?rec={RESPONSE_ID}
      body: '{"record": "{RESPONSE_ID}", "text": "call {ID}"}'
)yaml";

}  // namespace

TEST_CASE("gates see earlier extractions - variables carry to later events", "[engine]") {
  std::shared_ptr<const SecretSet> secrets;
  auto rules = rules_from(kFlow, &secrets);
  ScriptedTransport t;
  t.answer = [](const http::Request& r) {
    if (r.url.find("records.json") != std::string::npos)
      return reply(200, R"({"records":[],"totalCount":"0"})");
    if (r.url.find("record.json") != std::string::npos)
      return reply(200, R"({"id":"41","revision":"1"})");
    return reply(200, R"({"id":"1"})");
  };
  Engine engine(rules, secrets, &t);
  CallContext call;
  auto first = engine.run(event("inbound", "C1", "0312345678", false), call);
  REQUIRE(first.size() == 2);
  CHECK(first[0].status == RuleStatus::succeeded);
  CHECK(first[1].status == RuleStatus::succeeded);
  CHECK(first[1].gate == R"("0" matches /^0$/)");
  CHECK(call.vars["RESPONSE_ID"] == "41");
  CHECK(call.vars["RESPONSE_STATUS"] == "200");

  // kintone GET with a body goes as POST + X-HTTP-Method-Override.
  REQUIRE(t.seen.size() == 2);
  CHECK(t.seen[0].method == "POST");
  CHECK(t.seen[0].body == R"({"app": 7, "query": "電話番号 = \"0312345678\""})");
  bool override_found = false;
  for (const auto& [n, v] : t.seen[0].headers)
    override_found |= n == "X-HTTP-Method-Override" && v == "GET";
  CHECK(override_found);
  // The shown request hides the token; the sent one carries it.
  CHECK(first[0].request->headers[0].second == "[secret]");
  CHECK(t.seen[0].headers[0].second == "tok-abcdefghijkl");

  auto second = engine.run(event("hangup", "C1", "", true), call);
  REQUIRE(second.size() == 1);
  CHECK(second[0].status == RuleStatus::succeeded);
  CHECK(t.seen.back().url == "https://crm.example/k/v1/record/comment.json?rec=41");
  CHECK(t.seen.back().body == R"({"record": "41", "text": "call C1"})");
  CHECK(call.vars["TEL"] == "0312345678");  // kept from the inbound event
}

TEST_CASE("a known caller skips creation", "[engine]") {
  auto rules = rules_from(kFlow);
  ScriptedTransport t;
  t.answer = [](const http::Request&) {
    return reply(
        200,
        R"({"records":[{"record_no":{"type":"RECORD_NUMBER","value":"12"}}],"totalCount":"1"})");
  };
  Engine engine(rules, std::make_shared<SecretSet>(), &t);
  CallContext call;
  auto out = engine.run(event("inbound", "C2", "0311112222"), call);
  REQUIRE(out.size() == 2);
  CHECK(out[1].status == RuleStatus::skipped);
  CHECK(out[1].gate == R"("1" does not match /^0$/)");
  CHECK(t.seen.size() == 1);
  CHECK(call.vars["RESPONSE_ID"] == "12");
}

TEST_CASE("failures are values: transport error - HTTP error - header injection", "[engine]") {
  auto rules = rules_from(R"(
rules:
  - { name: a, event: inbound, order: 1, request: { url: "https://crm.example/a" } }
  - { name: b, event: inbound, order: 2, request: { url: "https://crm.example/b" } }
  - name: c
    event: inbound
    order: 3
    request: { url: "https://crm.example/c", headers: { X-Caller: "{TEL}" } }
)");
  ScriptedTransport t;
  t.answer = [](const http::Request& r) {
    if (r.url.ends_with("/a")) {
      http::Outcome o;
      o.kind = http::OutcomeKind::timeout;
      o.error = "timed out after 10000 ms";
      return o;
    }
    return reply(503, "busy");
  };
  Engine engine(rules, std::make_shared<SecretSet>(), &t);
  CallContext call;
  auto out = engine.run(event("inbound", "C3", "03\r\nX-Evil: 1"), call);
  REQUIRE(out.size() == 3);
  CHECK(out[0].status == RuleStatus::failed);
  CHECK(out[0].error == "timeout: timed out after 10000 ms");
  CHECK(out[1].status == RuleStatus::http_error);
  CHECK(out[1].error == "HTTP 503");
  CHECK(out[2].status == RuleStatus::failed);
  CHECK(out[2].error.find("CR, LF") != std::string::npos);
  CHECK(t.seen.size() == 2);  // c was never sent
}

TEST_CASE("response:// answers locally - dry run renders without sending", "[engine]") {
  auto rules = rules_from(R"yaml(
rules:
  - name: ivr
    event: inbound
    order: 1
    request: { url: 'response://{"rank":"gold","tel":"{TEL}"}' }
    extract: '/"rank":"(?P<RANK>\w+)"/'
  - name: post
    event: inbound
    order: 2
    request: { method: POST, url: "https://crm.example/x?r={RESPONSE_RANK}&u={UNDEFINED}" }
)yaml");
  ScriptedTransport t;
  t.answer = [](const http::Request&) { return reply(204, ""); };
  {
    Engine engine(rules, std::make_shared<SecretSet>(), &t);
    CallContext call;
    auto out = engine.run(event("inbound", "C4", "0300000000"), call);
    CHECK(out[0].status == RuleStatus::succeeded);
    CHECK_FALSE(out[0].sent);
    CHECK(call.vars["RESPONSE_RANK"] == "gold");
    CHECK(t.seen.at(0).url == "https://crm.example/x?r=gold&u=");
    CHECK(out[1].undefined == std::vector<std::string>{"UNDEFINED"});
  }
  {
    Engine dry(rules, std::make_shared<SecretSet>(), nullptr);
    CallContext call;
    auto out = dry.run(event("inbound", "C5"), call);
    CHECK(out[1].request);
    CHECK_FALSE(out[1].sent);
    CHECK_FALSE(out[1].response);
    CHECK(call.vars["TEL"] == "anonymous");
    CHECK(t.seen.size() == 1);
  }
}
