// GET /v1/escalation/definitions: the call flows and guidances the console's start form lists,
// with the {{parameters}} each guidance's messages use.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <regex>

#include "connectors/escalation/register.h"
#include "connectors/escalation/service.h"
#include "connectors/escalation/timer_queue.h"
#include "rules/config.h"
#include "rules/registry.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge;
using namespace callbridge::escalation;
using json = nlohmann::json;

namespace {

struct NoSink final : rules::EventSink {
  std::optional<rules::SubmittedEvent> submit(const rules::EventInput& event,
                                              std::shared_ptr<rules::EventObserver>,
                                              rules::SubmitRejection&) override {
    return rules::SubmittedEvent{"ev-1", event.call_id};
  }
};

struct NoTransport final : http::Transport {
  http::Outcome perform(const http::Request&) override { return {}; }
};

}  // namespace

TEST_CASE("escalation definitions list call flows and guidances with their parameters",
          "[escalation][console]") {
  rules::Registry registry;
  register_connector(registry);
  auto loaded = rules::load_config_text(R"(
escalation:
  contacts:
    - { id: c-01, name: 担当者 01, phone: "090-1111-0001" }
    - { id: c-02, name: 担当者 02, phone: "090-1111-0002" }
  callflows:
    - { id: night, name: 夜間, loop_limit: 3, contacts: [c-02, c-01] }
    - { id: day, contacts: [c-01] }
  guidances:
    - id: outage
      name: 障害通知
      message: "{{node}}で障害が発生しました。{{ detail }}"
      responses:
        1: { type: terminate, message: "{{node}}を担当します" }
        2: { type: continue, message: "{{who}}に回します" }
    - id: plain
      message: 連絡です
      responses:
        1: terminate
  dialer:
    type: simulate
)",
                                        "d.yaml", rules::process_env, registry);
  std::string errors;
  for (const auto& e : loaded.errors) errors += e.format() + "\n";
  INFO(errors);
  REQUIRE(loaded.config);
  auto section = loaded.config->section<EscalationSettings>("escalation");
  REQUIRE(section);

  callbridge::testing::MemoryStore kv;
  NoSink sink;
  NoTransport transport;
  std::vector<rules::Route> routes;
  rules::Services services;
  rules::Host host{kv, sink, transport, routes, services};
  ManualTimerQueue timers;
  auto service = EscalationService::create(*section, host, &timers);

  rules::HttpResponse res;
  bool routed = false;
  for (const auto& route : routes)
    if (route.method == "GET" &&
        std::regex_match("/v1/escalation/definitions", std::regex(route.pattern))) {
      CHECK(route.auth == rules::RouteAuth::token);
      route.handler(rules::HttpRequest{}, res);
      routed = true;
    }
  REQUIRE(routed);
  CHECK(res.status == 200);
  json j = json::parse(res.body);
  INFO(j.dump(2));
  REQUIRE(j["callflows"].size() == 2);
  CHECK(j["callflows"][0]["id"] == "day");
  CHECK(j["callflows"][1]["id"] == "night");
  CHECK(j["callflows"][1]["name"] == "夜間");
  CHECK(j["callflows"][1]["loop_limit"] == 3);
  CHECK(j["callflows"][1]["contacts"] == json::array({{{"id", "c-02"}, {"name", "担当者 02"}},
                                                      {{"id", "c-01"}, {"name", "担当者 01"}}}));
  REQUIRE(j["guidances"].size() == 2);
  const json& outage = j["guidances"][0];
  CHECK(outage["id"] == "outage");
  CHECK(outage["message"] == "{{node}}で障害が発生しました。{{ detail }}");
  CHECK(outage["parameters"] == json::array({"detail", "node", "who"}));
  CHECK(outage["keys"] == json::array({{{"key", 1}, {"reaction", "terminate"}},
                                       {{"key", 2}, {"reaction", "continue"}}}));
  CHECK(j["guidances"][1]["parameters"] == json::array());
  service->stop();
}
