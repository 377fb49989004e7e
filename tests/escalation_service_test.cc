// The escalation connector as the bridge runs it: YAML accepted and rejected, the `escalate`
// action, the Pigeon-compatible routes (the 000 seed's curl body, the 001 seed's polling loop),
// the webhook dialer's callback, the escalation.finished event, metrics.
#include <catch2/catch.hpp>
#include <regex>

#include "connectors/escalation/register.h"
#include "connectors/escalation/service.h"
#include "rules/config.h"
#include "rules/registry.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge;
using namespace callbridge::escalation;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

struct RecordingSink final : rules::EventSink {
  std::vector<rules::EventInput> events;
  bool refuse = false;
  std::optional<rules::SubmittedEvent> submit(const rules::EventInput& event,
                                              std::shared_ptr<rules::EventObserver>,
                                              rules::SubmitRejection& rejection) override {
    if (refuse) {
      rejection = {503, "busy", "too many events waiting; retry later"};
      return std::nullopt;
    }
    events.push_back(event);
    return rules::SubmittedEvent{"ev-" + std::to_string(events.size()), event.call_id};
  }
};

struct RecordingTransport final : http::Transport {
  std::vector<http::Request> requests;
  int status = 202;
  std::string body;
  http::Outcome perform(const http::Request& request) override {
    requests.push_back(request);
    http::Outcome o;
    o.kind = http::OutcomeKind::response;
    o.status = status;
    o.body = body;
    return o;
  }
};

const char* kYaml = R"(
escalation:
  contacts:
    - { id: c-01, name: 担当者 01, phone: "090-1111-0001" }
    - { id: c-02, name: 担当者 02, phone: "090-1111-0002" }
  callflows:
    - id: b8893b03-daca-489f-b41d-1043e6eafa3e
      name: 障害連絡
      loop_limit: 5
      contacts: [c-02, c-01]
  guidances:
    - id: fd09003c-1ef2-4988-8b30-4a9fbe9da402
      name: 障害通知
      message: "{{node}}で障害が発生しました。"
      responses:
        1: { type: terminate, message: 終了します }
        2: continue
        3: { type: 離脱 }
  dialer:
    type: simulate
    script:
      c-02: ["key 2", "key 2", "key 1"]
      c-01: "key 3"
  ring_timeout: 30
rules:
  - name: vip-missed
    event: hangup
    escalate:
      callflow: b8893b03-daca-489f-b41d-1043e6eafa3e
      guidance: fd09003c-1ef2-4988-8b30-4a9fbe9da402
      parameters: { node: "VIP {TEL}" }
)";

rules::LoadResult load(const std::string& yaml) {
  static const rules::Registry registry = [] {
    rules::Registry r;
    register_connector(r);
    return r;
  }();
  return rules::load_config_text(
      yaml, "test.yaml",
      [](std::string_view name) -> std::optional<std::string> {
        if (name == "PIGEON_TOKEN") return std::string("pigeon-token-1");
        return std::nullopt;
      },
      registry);
}

std::string errors_of(const rules::LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.format() + "\n";
  return out;
}

struct Bridge {
  callbridge::testing::MemoryStore kv;
  RecordingSink sink;
  RecordingTransport transport;
  std::vector<rules::Route> routes;
  rules::Services services;
  rules::Host host{kv, sink, transport, routes, services};
  ManualTimerQueue timers;
  std::shared_ptr<EscalationService> service;

  explicit Bridge(const EscalationSettings& section) {
    service = EscalationService::create(section, host, &timers);
    services.add("escalation", service);
    service->start();
  }

  rules::HttpResponse call(const std::string& method, const std::string& path,
                           const std::string& body = "",
                           std::multimap<std::string, std::string> params = {}) {
    rules::HttpResponse res;
    for (const auto& route : routes) {
      std::smatch m;
      if (route.method != method || !std::regex_match(path, m, std::regex(route.pattern))) continue;
      CHECK(route.auth == rules::RouteAuth::token);
      rules::HttpRequest req;
      req.method = method;
      req.path = path;
      for (const auto& g : m) req.matches.push_back(g.str());
      req.body = body;
      req.params = std::move(params);
      route.handler(req, res);
      return res;
    }
    res.error(404, rules::ErrorCode::not_found, "no route for " + path);
    return res;
  }
};

const EscalationSettings& section_of(const rules::LoadResult& r) {
  REQUIRE(r.config);
  auto s = r.config->section<EscalationSettings>("escalation");
  REQUIRE(s);
  return *s;
}

}  // namespace

TEST_CASE("escalation config: the section and the action load", "[escalation]") {
  auto r = load(kYaml);
  INFO(errors_of(r));
  const auto& s = section_of(r);
  CHECK(s.contacts.at("c-01").name == "担当者 01");
  const auto& flow = s.callflows.at("b8893b03-daca-489f-b41d-1043e6eafa3e");
  CHECK(flow.loop_limit == 5);
  REQUIRE(flow.contacts.size() == 2);
  CHECK(flow.contacts[0].phone == "090-1111-0002");
  const auto& g = s.guidances.at("fd09003c-1ef2-4988-8b30-4a9fbe9da402");
  CHECK(g.responses.at(3).reaction == Reaction::leave);
  CHECK(g.responses.at(2).reaction == Reaction::continue_on);
  CHECK(s.dialer.type == DialerType::simulate);
  CHECK(s.dialer.script.at("c-01").size() == 1);
  CHECK(s.engine.ring_timeout == 30s);
  const auto& rule = r.config->rules->all().at(0);
  REQUIRE(rule.action);
  CHECK(rule.action->describe() ==
        "escalate call flow b8893b03-daca-489f-b41d-1043e6eafa3e with guidance "
        "fd09003c-1ef2-4988-8b30-4a9fbe9da402");
  CHECK_FALSE(rule.action->idempotent());
}

TEST_CASE("escalation config: every mistake is reported with its place", "[escalation]") {
  auto r = load(R"(
escalation:
  contacts:
    - { id: a, phone: "1" }
  callflows:
    - { id: f, contacts: [a, ghost], loop_limit: 0 }
  guidances:
    - id: g
      message: hi
      responses: { 2: continue, 0: leave }
    - id: h
      message: hi
      responses: { 1: stop }
  dialer: { type: webhook, url: "ftp://x" }
  ring_timeout: 1
  colour: red
rules:
  - name: r
    event: inbound
    escalate: { callflow: nope, guidance: g }
)");
  std::string text = errors_of(r);
  INFO(text);
  CHECK_FALSE(r.config);
  CHECK(text.find("unknown contact \"ghost\"; known: a") != std::string::npos);
  CHECK(text.find("loop_limit") != std::string::npos);
  CHECK(text.find("keys are 1-9, got \"0\"") != std::string::npos);
  CHECK(text.find("escalation.guidances[1].responses.1.type") != std::string::npos);
  CHECK(text.find("must start with http:// or https://") != std::string::npos);
  CHECK(text.find("ring_timeout") != std::string::npos);
  CHECK(text.find("colour") != std::string::npos);
  CHECK(text.find("test.yaml:") == 0);
  CHECK(text.find("needs an `escalation:` section") == std::string::npos);  // it has one, broken
}

TEST_CASE("escalation config: the action names call flows and guidances that exist",
          "[escalation]") {
  auto r = load(R"(
escalation:
  contacts: [ { id: a, phone: "1" } ]
  callflows: [ { id: f, contacts: [a] } ]
  guidances: [ { id: g, message: hi, responses: { 1: terminate } } ]
rules:
  - name: r
    event: inbound
    escalate: { callflow: nope, guidance: nada, parameters: [ x ], extra: 1 }
  - name: s
    event: inbound
    escalate:
      callflow: { loop_limit: 2, contacts: [a, { name: 当番, phone: "03" }] }
      guidance: { message: "{{x}}", responses: { 4: leave } }
)");
  std::string text = errors_of(r);
  INFO(text);
  CHECK_FALSE(r.config);
  CHECK(text.find("unknown call flow \"nope\"; known: f") != std::string::npos);
  CHECK(text.find("unknown guidance \"nada\"; known: g") != std::string::npos);
  CHECK(text.find("extra") != std::string::npos);
  CHECK(text.find("escalate.parameters") != std::string::npos);
  CHECK(text.find("at least one response of type terminate") != std::string::npos);
  auto none =
      load("rules:\n  - name: r\n    event: inbound\n    escalate: { callflow: f, guidance: g }\n");
  CHECK(errors_of(none).find("needs an `escalation:` section") != std::string::npos);
}

TEST_CASE("escalation config: pigeon passes unknown ids through: token is a secret",
          "[escalation]") {
  auto r = load(R"(
escalation:
  dialer: { type: pigeon, url: "https://shibuya.cloud.kompira.jp", token: "${PIGEON_TOKEN}" }
rules:
  - name: r
    event: inbound
    escalate: { callflow: b8893b03, guidance: fd09003c }
)");
  INFO(errors_of(r));
  const auto& s = section_of(r);
  CHECK(s.dialer.pigeon.token == "pigeon-token-1");
  CHECK(r.config->secrets->redact("Token pigeon-token-1") == "Token [secret]");
}

TEST_CASE("escalation: the 000 seed's curl and the 001 seed's polling loop", "[escalation]") {
  auto r = load(kYaml);
  INFO(errors_of(r));
  Bridge b(section_of(r));
  // The command generator's body, as printed in the manual.
  auto invoked = b.call("POST", "/api/apps/pigeon/chain/invoke",
                        R"({"params":{"callflowId":"b8893b03-daca-489f-b41d-1043e6eafa3e",)"
                        R"("guidanceId":"fd09003c-1ef2-4988-8b30-4a9fbe9da402",)"
                        R"("parameters":{"node":"ウェブサーバ"}}})");
  REQUIRE(invoked.status == 200);
  std::string result_id = json::parse(invoked.body)["resultId"];
  // The job flow: while is_active: sleep(wait_time); GET results/{resultId}.
  bool is_active = true;
  json result;
  int polls = 0;
  while (is_active && polls < 100) {
    b.timers.advance(15s);
    auto res = b.call("GET", "/api/apps/pigeon/results/" + result_id);
    REQUIRE(res.status == 200);
    result = json::parse(res.body);
    is_active = result["isActive"];
    ++polls;
  }
  CHECK_FALSE(is_active);
  CHECK(result["keyInput"] == "1");
  CHECK(result["status"] == "succeeded");
  CHECK(result["history"].size() == 4);
  CHECK(result["history"][1]["reaction"] == "leave");
  CHECK(result["history"][0]["message"] == "ウェブサーバで障害が発生しました。");
  // API chains have no call: their event goes to a call of their own.
  REQUIRE(b.sink.events.size() == 1);
  CHECK(b.sink.events[0].call_id == "escalation-" + result_id);

  auto list = json::parse(b.call("GET", "/v1/escalation/chains").body);
  REQUIRE(list["chains"].size() == 1);
  CHECK(list["chains"][0]["status"] == "succeeded");
  auto one = json::parse(b.call("GET", "/v1/escalation/chains/" + result_id).body);
  CHECK(one["attempts"].size() == 4);
  CHECK(b.call("GET", "/v1/escalation/chains/nope").status == 404);
  CHECK(b.call("GET", "/api/apps/pigeon/results/nope").status == 404);
}

TEST_CASE("escalation: invoke with an inline call flow and guidance", "[escalation]") {
  auto r = load(kYaml);
  Bridge b(section_of(r));
  auto res = b.call("POST", "/api/apps/pigeon/chain/invoke", R"({"params":{
      "callflow": {"loopLimit": 1, "contacts": ["c-01", {"displayName": "当番", "phoneNumber": "0312345678"}]},
      "guidance": {"messageTemplate": "{{msg}}", "reactions": [{"key": "9", "type": "terminate"}]},
      "parameters": {"msg": "至急"}}})");
  REQUIRE(res.status == 200);
  std::string id = json::parse(res.body)["resultId"];
  b.timers.run_until([&] { return !b.service->engine().get(id)->active(); });
  auto s = *b.service->engine().get(id);
  CHECK(s.status == ChainStatus::failed);  // c-01 pressed 3, which this guidance lacks
  REQUIRE(s.attempts.size() == 2);
  CHECK(s.attempts[1].phone == "0312345678");
  CHECK(s.attempts[1].message == "至急");
}

TEST_CASE("escalation: invoke and abort refuse bad input", "[escalation]") {
  auto r = load(kYaml);
  Bridge b(section_of(r));
  auto bad = [&](const std::string& body, int status, const std::string& code) {
    auto res = b.call("POST", "/api/apps/pigeon/chain/invoke", body);
    INFO(body << " -> " << res.body);
    CHECK(res.status == status);
    CHECK(json::parse(res.body)["error"]["code"] == code);
  };
  bad("not json", 400, "invalid_json");
  bad(R"({"params":{"callflowId":"x","guidanceId":"fd09003c-1ef2-4988-8b30-4a9fbe9da402"}})", 404,
      "unknown_callflow");
  bad(R"({"params":{"callflowId":"b8893b03-daca-489f-b41d-1043e6eafa3e"}})", 400,
      "missing_guidance");
  bad(R"({"params":{"callflowId":"b8893b03-daca-489f-b41d-1043e6eafa3e",)"
      R"("guidance":{"messageTemplate":"x","reactions":[{"key":"1","type":"continue"}]}}})",
      400, "invalid_guidance");
  auto res = b.call("POST", "/api/apps/pigeon/chain/abort", R"({"params":{"resultId":"nope"}})");
  CHECK(res.status == 404);
  res = b.call("POST", "/api/apps/pigeon/chain/abort", R"({"params":{}})");
  CHECK(res.status == 400);
}

TEST_CASE("escalation: abort through the API", "[escalation]") {
  auto r = load(kYaml);
  Bridge b(section_of(r));
  auto* dialer = dynamic_cast<SimulatedDialer*>(b.service->dialer());
  REQUIRE(dialer);
  std::string parse_error;
  dialer->set_script("c-02", {*ScriptedAnswer::parse("key 1 after 20", parse_error)});
  auto res = b.call("POST", "/api/apps/pigeon/chain/invoke",
                    R"({"params":{"callflowId":"b8893b03-daca-489f-b41d-1043e6eafa3e",)"
                    R"("guidanceId":"fd09003c-1ef2-4988-8b30-4a9fbe9da402"}})");
  std::string id = json::parse(res.body)["resultId"];
  b.timers.run_ready();
  res = b.call("POST", "/api/apps/pigeon/chain/abort", json{{"params", {{"resultId", id}}}}.dump());
  REQUIRE(res.status == 200);
  CHECK(json::parse(res.body)["status"] == "aborted");
  CHECK(json::parse(res.body)["isActive"] == false);
  CHECK(json::parse(res.body)["history"][0]["result"] == "aborted");
  res = b.call("POST", "/api/apps/pigeon/chain/abort", json{{"resultId", id}}.dump());
  CHECK(res.status == 409);
}

TEST_CASE("escalation: the escalate action starts a chain: its end comes back to the call",
          "[escalation]") {
  auto r = load(kYaml);
  INFO(errors_of(r));
  Bridge b(section_of(r));
  const auto& rule = r.config->rules->all().at(0);
  rules::CallContext call{"C42", {{"TEL", "0312345678"}, {"ID", "C42"}}};
  rules::RuleOutcome out;
  std::vector<http::Request> shown;
  std::function<bool(const http::Request&)> before = [&](const http::Request& req) {
    shown.push_back(req);
    return true;
  };
  rules::ActionContext ctx{call, *r.config->secrets, &b.transport, &b.services, before};
  rule.action->run(ctx, out);
  INFO(out.error);
  REQUIRE(out.status == rules::RuleStatus::succeeded);
  REQUIRE(out.response);
  CHECK(out.response->status == 202);
  std::string id = call.vars.at("ESCALATION_CHAIN_ID");
  CHECK(json::parse(out.response->body)["resultId"] == id);
  REQUIRE(shown.size() == 1);
  CHECK(json::parse(shown[0].body)["parameters"]["node"] == "VIP 0312345678");

  REQUIRE(b.timers.run_until([&] { return !b.sink.events.empty(); }));
  const auto& e = b.sink.events[0];
  CHECK(e.event == "escalation.finished");
  CHECK(e.call_id == "C42");
  CHECK(e.vars.at("ESCALATION_STATUS") == "succeeded");
  CHECK(e.vars.at("ESCALATION_KEY") == "1");
  CHECK(e.vars.at("ESCALATION_CONTACT") == "c-02");
  CHECK(e.vars.at("ESCALATION_CONTACT_NAME") == "担当者 02");
  CHECK(e.vars.at("ESCALATION_LOOPS") == "3");
  CHECK(e.vars.at("ESCALATION_CHAIN_ID") == id);
  CHECK(b.service->engine().get(id)->origin_rule == "vip-missed");

  std::string metrics;
  b.service->metrics(metrics);
  CHECK(metrics.find("callbridge_escalation_chains_finished_total{status=\"succeeded\"} 1\n") !=
        std::string::npos);
  CHECK(metrics.find("callbridge_escalation_attempts_total{outcome=\"succeeded\"} 4\n") !=
        std::string::npos);
  CHECK(metrics.find("callbridge_escalation_chains_running 0\n") != std::string::npos);

  // A dry run (no transport) shows the request and starts nothing.
  rules::RuleOutcome dry;
  rules::ActionContext dry_ctx{call, *r.config->secrets, nullptr, nullptr, before};
  rule.action->run(dry_ctx, dry);
  CHECK_FALSE(dry.sent);
  CHECK(dry.request);
  CHECK(b.service->engine().list().size() == 1);
}

TEST_CASE("escalation: a finished event the bridge refuses is submitted again", "[escalation]") {
  auto r = load(kYaml);
  Bridge b(section_of(r));
  b.sink.refuse = true;
  std::string error;
  auto s = b.service->start_chain(ChainRequest{section_of(r).callflows.begin()->second,
                                               section_of(r).guidances.begin()->second,
                                               {},
                                               "C1",
                                               "x"},
                                  error);
  REQUIRE(s);
  b.timers.run_until([&] { return !b.service->engine().get(s->id)->active(); });
  CHECK(b.sink.events.empty());
  b.sink.refuse = false;
  b.timers.advance(10s);
  CHECK(b.sink.events.size() == 1);
  b.timers.advance(60s);
  CHECK(b.sink.events.size() == 1);
}

TEST_CASE("escalation: the webhook dialer posts the call and takes the result by callback",
          "[escalation]") {
  auto r = load(R"(
escalation:
  contacts: [ { id: a, phone: "0311112222" } ]
  callflows: [ { id: f, contacts: [a], loop_limit: 2 } ]
  guidances: [ { id: g, message: "{{what}} です", responses: { 1: terminate } } ]
  dialer:
    type: webhook
    url: http://gateway.invalid/dial
    headers: { Authorization: "Bearer ${PIGEON_TOKEN}" }
    callback_base: http://127.0.0.1:8080
)");
  INFO(errors_of(r));
  Bridge b(section_of(r));
  b.transport.status = 202;
  std::string error;
  auto s = b.service->start_chain(ChainRequest{section_of(r).callflows.at("f"),
                                               section_of(r).guidances.at("g"),
                                               {{"what", "停電"}},
                                               "C1",
                                               "x"},
                                  error);
  REQUIRE(s);
  b.timers.run_ready();
  REQUIRE(b.transport.requests.size() == 1);
  const auto& req = b.transport.requests[0];
  CHECK(req.url == "http://gateway.invalid/dial");
  auto body = json::parse(req.body);
  std::string attempt = body["attemptId"];
  CHECK(body["message"] == "停電 です");
  CHECK(body["contact"]["phone"] == "0311112222");
  CHECK(body["loop"] == 1);
  CHECK(body["callbackUrl"] == "http://127.0.0.1:8080/v1/escalation/dial/" + attempt + "/result");
  CHECK(b.service->engine().get(s->id)->phase == Phase::dialing);

  auto res = b.call("POST", "/v1/escalation/dial/" + attempt + "/result", R"({"outcome":"weird"})");
  CHECK(res.status == 400);
  res = b.call("POST", "/v1/escalation/dial/" + attempt + "/result",
               R"({"outcome":"succeeded","key":1})");
  CHECK(res.status == 200);
  b.timers.run_ready();
  CHECK(b.service->engine().get(s->id)->status == ChainStatus::succeeded);
  res = b.call("POST", "/v1/escalation/dial/" + attempt + "/result",
               R"({"outcome":"succeeded","key":1})");
  CHECK(res.status == 404);

  // A gateway that answers at once.
  b.transport.status = 200;
  b.transport.body = R"({"outcome":"missed"})";
  s = b.service->start_chain(
      ChainRequest{section_of(r).callflows.at("f"), section_of(r).guidances.at("g"), {}, "C2", "x"},
      error);
  b.timers.run_until([&] { return !b.service->engine().get(s->id)->active(); });
  auto done = *b.service->engine().get(s->id);
  CHECK(done.status == ChainStatus::failed);
  CHECK(done.attempts.size() == 2);
  CHECK(done.attempts[0].outcome == AttemptOutcome::missed);
}
