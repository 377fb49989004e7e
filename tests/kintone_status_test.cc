// The kintone connector's status for the console (GET /v1/kintone/connections): each
// connection's auth kind, OAuth state with its authorize path, requests in flight and today per
// app against `daily_request_limit`, and the directory's last sync; against the fake kintone.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "bridge/connectors.h"
#include "connectors/kintone/config.h"
#include "connectors/kintone/service.h"
#include "http/http_client.h"
#include "rules/config.h"
#include "tests/fakes/fake_kintone.h"

using namespace callbridge;
using callbridge::testing::FakeKintone;
using nlohmann::json;

namespace {

rules::LoadResult load(const std::string& yaml) {
  auto registry = bridge::connector_registry();
  return rules::load_config_text(yaml, "k.yaml", rules::process_env, registry);
}

std::string errors_of(const rules::LoadResult& r) {
  std::string all;
  for (const auto& d : r.errors) all += d.format() + "\n";
  return all;
}

}  // namespace

TEST_CASE("kintone.connections.*.daily_request_limit: default, set, and out of bounds",
          "[kintone-connector][config]") {
  auto base = [](const std::string& extra) {
    return "kintone:\n  connections:\n    main:\n      url: https://example.cybozu.com\n"
           "      api_token: t\n" +
           extra;
  };
  auto plain = load(base(""));
  INFO(errors_of(plain));
  REQUIRE(plain.config);
  auto settings = plain.config->section<kintone::KintoneSettings>("kintone");
  REQUIRE(settings);
  CHECK(settings->connections.at("main").connection.daily_request_limit == 10000);

  auto set = load(base("      daily_request_limit: 50000\n"));
  REQUIRE(set.config);
  CHECK(set.config->section<kintone::KintoneSettings>("kintone")
            ->connections.at("main")
            .connection.daily_request_limit == 50000);

  auto zero = load(base("      daily_request_limit: 0\n"));
  CHECK_FALSE(zero.config);
  CHECK(
      errors_of(zero).find("k.yaml:6:28: error: \"kintone.connections.main.daily_request_limit\": "
                           "must be between 1 and 100000000, got 0") != std::string::npos);
}

TEST_CASE("kintone status: connections, requests today per app, OAuth state and the directory",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(14);
  k.add_api_token(14, "t14");
  k.insert_record(14, {{"電話番号", {{"value", "03-1234-5678"}}}, {"顧客名", {{"value", "A"}}}});
  k.insert_record(14, {{"電話番号", {{"value", "03-2222-3333"}}}, {"顧客名", {{"value", "B"}}}});
  auto loaded = load("kintone:\n  connections:\n    main:\n      url: " + k.base_url() +
                     "\n      api_token: t14\n      daily_request_limit: 20\n"
                     "    oa:\n      url: " +
                     k.base_url() +
                     "\n      oauth: { client_id: cid, client_secret: cs, redirect_uri: "
                     "\"https://bridge.example/v1/kintone/oauth/oa/callback\" }\n"
                     "  directory:\n    connection: main\n    app: 14\n"
                     "    phone_fields: [電話番号]\n    name_field: 顧客名\n");
  INFO(errors_of(loaded));
  REQUIRE(loaded.config);
  http::HttpClient transport;
  kintone::KintoneService service(loaded.config->section<kintone::KintoneSettings>("kintone"),
                                  transport, nullptr, [](const std::string&) {});

  json before = service.status();
  INFO(before.dump());
  REQUIRE(before["connections"].size() == 2);
  const json& main = before["connections"][0];
  CHECK(main["name"] == "main");
  CHECK(main["auth"] == "api_token");
  CHECK(main["oauth"].is_null());
  CHECK(main["apps"].empty());
  CHECK(main["daily_request_limit"] == 20);
  CHECK(main["max_concurrency"] == 10);
  const json& oa = before["connections"][1];
  CHECK(oa["auth"] == "oauth");
  CHECK(oa["oauth"]["authorized"] == false);
  CHECK(oa["oauth"]["authorize"] == "/v1/kintone/oauth/oa/start");
  CHECK(before["directory"]["customers"] == 0);
  CHECK(before["directory"]["last_sync"] == "");

  REQUIRE(service.directory()->sync().ok());
  json after = service.status();
  INFO(after.dump());
  const json& apps = after["connections"][0]["apps"];
  REQUIRE(apps.size() == 1);
  CHECK(apps[0]["app"] == 14);
  // The count the fake saw: one request for the total, one page of records.
  CHECK(apps[0]["requests_today"] == k.requests().size());
  CHECK(apps[0]["requests_total"] == k.requests().size());
  CHECK(apps[0]["daily_request_limit"] == 20);
  CHECK(after["connections"][0]["in_flight"] == 0);
  CHECK(after["directory"]["customers"] == 2);
  CHECK(after["directory"]["app"] == 14);
  CHECK(after["directory"]["connection"] == "main");
  CHECK(after["directory"]["last_sync"].get<std::string>().size() == 24);
  CHECK(after["directory"]["last_duration_ms"].is_number_integer());

  // The route answers the same document.
  rules::HttpResponse res;
  for (auto& route : service.routes())
    if (route.pattern == "/v1/kintone/connections") route.handler(rules::HttpRequest{}, res);
  CHECK(json::parse(res.body)["connections"].size() == 2);
  std::string metrics;
  service.metrics(metrics);
  CHECK(metrics.find("callbridge_kintone_daily_request_limit{connection=\"main\"} 20") !=
        std::string::npos);
}
