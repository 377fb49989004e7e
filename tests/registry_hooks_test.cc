// What connectors contribute through the registry beyond sections, actions and services (auth
// kinds, request inspectors, commands, history views, schema text), and the shared ways of the
// core: one route call, one error vocabulary, one section lookup.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "bridge/connectors.h"
#include "rules/config_reader.h"
#include "rules/config_schema.h"
#include "rules/engine.h"
#include "rules/error_code.h"
#include "rules/registry.h"

using namespace callbridge;

namespace {

std::optional<std::string> no_env(std::string_view) {
  return std::nullopt;
}

std::string all_errors(const rules::LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.format() + "\n";
  return out;
}

const char* kKintoneGet = R"(rules:
  - name: lookup
    event: inbound
    request:
      method: GET
      url: https://example.cybozu.com/k/v1/records.json
      headers: {Content-Type: application/json}
      body: '{"app": 7, "query": "tel = \"{TEL}\""}'
      auth: {type: kintone-token, token: tok-0123456789}
)";

struct Quiet : rules::Service {};

}  // namespace

TEST_CASE("the core alone knows no kintone credentials; the kintone connector adds them",
          "[registry]") {
  auto core = rules::load_config_text(kKintoneGet, "t.yaml", no_env);
  REQUIRE_FALSE(core.config);
  CHECK(all_errors(core).find("unknown auth type \"kintone-token\"; known: basic, bearer") !=
        std::string::npos);

  auto full = rules::load_config_text(kKintoneGet, "t.yaml", no_env, bridge::connector_registry());
  INFO(all_errors(full));
  REQUIRE(full.config);
  const auto& spec = full.config->rules->all().at(0).request;
  REQUIRE(spec.headers.size() == 2);
  CHECK(spec.headers[1].name == "X-Cybozu-API-Token");
  CHECK(spec.headers[1].secret);
  // The inspector escaped {TEL} for kintone's query language and said so.
  bool noted = false;
  for (const auto& n : full.notes)
    noted = noted || n.message == "{TEL} is escaped for kintone's query language";
  CHECK(noted);
}

TEST_CASE("a request inspector adapts what is sent and shown", "[registry]") {
  auto full = rules::load_config_text(kKintoneGet, "t.yaml", no_env, bridge::connector_registry());
  REQUIRE(full.config);
  rules::Engine engine(full.config->rules, full.config->secrets, nullptr);  // dry run
  rules::CallContext call;
  auto outcomes = engine.run({"inbound", "C1", "0311112222", std::nullopt, {}}, call);
  REQUIRE(outcomes.size() == 1);
  REQUIRE(outcomes[0].request);
  CHECK(outcomes[0].request->method == "POST");
  bool override_header = false;
  for (const auto& [name, value] : outcomes[0].request->headers)
    override_header = override_header || (name == "X-HTTP-Method-Override" && value == "GET");
  CHECK(override_header);
  CHECK(outcomes[0].request->body.find(R"(\"0311112222\")") != std::string::npos);

  // Without the connector the same GET goes out as written.
  rules::Registry bare;
  bare.add_auth_kind("kintone-token", [](rules::AuthReader& auth) {
    auth.check_keys({"token"});
    if (auto t = auth.secret("token")) auth.add_header("X-Cybozu-API-Token", *t);
  });
  auto plain = rules::load_config_text(kKintoneGet, "t.yaml", no_env, bare);
  INFO(all_errors(plain));
  REQUIRE(plain.config);
  rules::Engine plain_engine(plain.config->rules, plain.config->secrets, nullptr);
  rules::CallContext plain_call;
  auto plain_outcomes =
      plain_engine.run({"inbound", "C1", "0311112222", std::nullopt, {}}, plain_call);
  REQUIRE(plain_outcomes.at(0).request);
  CHECK(plain_outcomes[0].request->method == "GET");
}

TEST_CASE("connectors contribute their commands, history views and schema text", "[registry]") {
  const auto& registry = bridge::connector_registry();
  bool sync = false, chains = false;
  for (const auto& c : registry.commands()) sync = sync || c.name == "directory-sync";
  for (const auto& v : registry.history_views())
    chains = chains || (v.list_flag == "chains" && v.item_option == "chain");
  CHECK(sync);
  CHECK(chains);
  auto paths = rules::described_paths(registry);
  CHECK(std::find(paths.begin(), paths.end(), "kintone.connections") != paths.end());
  CHECK(std::find(paths.begin(), paths.end(), "escalation.dialer") != paths.end());
  auto core_paths = rules::described_paths(rules::core_registry());
  CHECK(std::find(core_paths.begin(), core_paths.end(), "kintone") == core_paths.end());
}

TEST_CASE("Host::add_route keeps the service alive and answers an exception with 500",
          "[registry]") {
  std::vector<rules::Route> routes;
  rules::Services services;
  struct NoStore : rules::KeyValueStore {
    bool put(std::string_view, std::string_view, std::string_view, std::string&) override {
      return true;
    }
    bool erase(std::string_view, std::string_view, std::string&) override { return true; }
    std::optional<std::string> get(std::string_view, std::string_view) override { return {}; }
    std::vector<std::pair<std::string, std::string>> scan(std::string_view) override { return {}; }
  } store;
  struct NoSink : rules::EventSink {
    std::optional<rules::SubmittedEvent> submit(const rules::EventInput&,
                                                std::shared_ptr<rules::EventObserver>,
                                                rules::SubmitRejection& rejection) override {
      rejection.set(503, rules::ErrorCode::busy, "no");
      return std::nullopt;
    }
  } sink;
  struct NoTransport : http::Transport {
    http::Outcome perform(const http::Request&) override { return {}; }
  } transport;
  rules::Host host{store, sink, transport, routes, services};

  auto service = std::make_shared<Quiet>();
  std::weak_ptr<Quiet> watch = service;
  host.add_route(service, {"GET", "/v1/boom", rules::RouteAuth::token,
                           [](const rules::HttpRequest&, rules::HttpResponse& res) {
                             res.status = 299;
                             res.body = "partial";
                             throw std::runtime_error("secret detail");
                           }});
  service.reset();
  CHECK_FALSE(watch.expired());  // the route holds it

  rules::HttpResponse res;
  routes.at(0).handler({}, res);
  CHECK(res.status == 500);
  auto body = nlohmann::json::parse(res.body);
  CHECK(body["error"]["code"] == "internal");
  CHECK(body["error"]["message"] == "internal error");
  CHECK(res.body.find("secret detail") == std::string::npos);

  routes.clear();
  CHECK(watch.expired());
}

TEST_CASE("one error vocabulary: every code has one JSON name and one body shape", "[registry]") {
  for (int i = 0; i <= static_cast<int>(rules::ErrorCode::escalation_unavailable); ++i) {
    auto code = static_cast<rules::ErrorCode>(i);
    std::string name(rules::to_string(code));
    INFO(name);
    CHECK(rules::error_code_named(name) == code);
    auto body = nlohmann::json::parse(rules::error_body(code, "m"));
    CHECK(body == nlohmann::json{{"error", {{"code", name}, {"message", "m"}}}});
  }
  CHECK(rules::to_string(rules::ErrorCode::invalid_params) == "invalid_params");
  CHECK_FALSE(rules::error_code_named("invalid_parameters"));

  rules::SubmitRejection rejection;
  CHECK(rejection.code.empty());
  CHECK(rejection.error_code() == rules::ErrorCode::journal_unavailable);
  rejection.set(503, rules::ErrorCode::busy, "full");
  CHECK(rejection.code == "busy");
  CHECK(rejection.error_code() == rules::ErrorCode::busy);
}

TEST_CASE("a section is found one way, by its type", "[registry]") {
  struct Greeting : rules::Section {
    std::string text;
  };
  struct Other : rules::Section {};
  rules::Config config;
  auto greeting = std::make_shared<Greeting>();
  greeting->text = "hello";
  config.sections["greeting"] = greeting;
  auto found = config.section<Greeting>("greeting");
  REQUIRE(found);
  CHECK(found->text == "hello");
  CHECK_FALSE(config.section<Other>("greeting"));
  CHECK_FALSE(config.section<Greeting>("missing"));
}

TEST_CASE("the URL scheme check is shared", "[registry]") {
  CHECK(rules::is_http_url("http://x"));
  CHECK(rules::is_http_url("https://x"));
  CHECK_FALSE(rules::is_http_url("ftp://x"));
  CHECK_FALSE(rules::is_http_url("response://x"));
  CHECK_FALSE(rules::is_http_url("HTTP://x"));
}
