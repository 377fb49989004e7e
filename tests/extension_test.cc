// The extension points connectors plug into: config sections and typed actions at load, then
// services that enrich events, observe them and serve routes in a running bridge.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "bridge/app.h"
#include "bridge/history.h"
#include "bridge/intake.h"
#include "bridge/journal/journal.h"
#include "bridge/server.h"
#include "rules/action.h"
#include "rules/config_reader.h"
#include "rules/registry.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge;
using callbridge::testing::TempDir;

namespace {

std::optional<std::string> no_env(std::string_view) {
  return std::nullopt;
}

struct GreetingSection : rules::Section {
  std::string greeting;
};

// `greet: {name: "{TEL}"}` sets GREETING from the section's text; no network.
class GreetAction : public rules::Action {
 public:
  GreetAction(std::string greeting, rules::Template name)
      : greeting_(std::move(greeting)), name_(std::move(name)) {}
  void run(rules::ActionContext& ctx, rules::RuleOutcome& out) const override {
    rules::RenderReport report;
    std::string value = greeting_ + " " + name_.render(ctx.call.vars, report);
    ctx.call.vars["GREETING"] = value;
    out.extracted["GREETING"] = value;
    out.status = rules::RuleStatus::succeeded;
    http::Outcome response;
    response.kind = http::OutcomeKind::response;
    response.status = 200;
    response.body = "{\"said\":\"" + value + "\"}";
    out.response = response;
  }
  bool idempotent() const override { return true; }
  std::string describe() const override { return "greet"; }

 private:
  std::string greeting_;
  rules::Template name_;
};

class TagService : public rules::Service {
 public:
  void enrich(const rules::EventInput& event, rules::Variables& vars) const override {
    vars["TAGGED"] = "tag:" + event.event;
  }
  void metrics(std::string& out) const override { out += "test_tag_service 1\n"; }
};

rules::Registry test_registry() {
  rules::Registry r;
  r.add_section("greeting",
                [](const YAML::Node& node,
                   rules::ConfigReader& reader) -> std::shared_ptr<const rules::Section> {
                  if (!reader.expect_map(node, "greeting")) return nullptr;
                  reader.check_keys(node, {"text"}, "greeting");
                  auto text = reader.required(node, "text", "greeting");
                  if (!text) return nullptr;
                  auto value = reader.string_setting(text, "greeting.text");
                  if (!value) return nullptr;
                  auto section = std::make_shared<GreetingSection>();
                  section->greeting = *value;
                  return section;
                });
  r.add_action("greet",
               [](const YAML::Node& node, rules::ConfigReader& reader,
                  const std::string&) -> std::shared_ptr<const rules::Action> {
                 auto section = reader.section<GreetingSection>("greeting");
                 if (!section) {
                   reader.error(node, "\"greet\" needs a top-level \"greeting\" section");
                   return nullptr;
                 }
                 reader.check_keys(node, {"name"}, "greet");
                 auto name =
                     reader.template_setting(node["name"], "greet.name", rules::Destination::text);
                 if (!name) return nullptr;
                 return std::make_shared<GreetAction>(section->greeting, *name);
               });
  r.add_service("tags", [](const rules::Config&, rules::Host& host) {
    host.routes.push_back({"GET", "/v1/test/open", rules::RouteAuth::none,
                           [](const rules::HttpRequest& req, rules::HttpResponse& res) {
                             res.body = "{\"open\":\"" + req.param("q") + "\"}";
                           }});
    host.routes.push_back({"POST", R"(/v1/test/items/([a-z]+))", rules::RouteAuth::token,
                           [](const rules::HttpRequest& req, rules::HttpResponse& res) {
                             if (req.body.empty()) {
                               // An extension's own code, beside rules::ErrorCode's vocabulary.
                               res.status = 400;
                               res.body = R"({"error":{"code":"empty","message":"no body"}})";
                               return;
                             }
                             res.status = 201;
                             res.body = "{\"item\":\"" + req.matches.at(1) + "\"}";
                           }});
    return std::make_shared<TagService>();
  });
  return r;
}

const char* kYaml = R"yaml(greeting:
  text: hello
rules:
  - name: greet-caller
    event: inbound
    greet: {name: "{TEL}"}
    extract: '/"said":"(?P<SAID>[^"]+)"/'
)yaml";

// Records what the dispatcher reports about one event.
struct Recorder : rules::EventObserver {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> rules;
  std::optional<rules::Variables> finished;
  void on_rule(const rules::RuleOutcome& outcome, const rules::Variables&) override {
    std::lock_guard lock(mutex);
    rules.push_back(outcome.rule);
  }
  void on_finished(const rules::Variables& vars) override {
    std::lock_guard lock(mutex);
    finished = vars;
    cv.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return finished.has_value(); });
  }
};

}  // namespace

TEST_CASE("connector sections and typed actions load strictly", "[extension]") {
  auto registry = test_registry();
  auto ok = rules::load_config_text(kYaml, "t.yaml", no_env, registry);
  REQUIRE(ok.errors.empty());
  const rules::Rule& rule = ok.config->rules->all().at(0);
  CHECK(rule.action_key == "greet");
  REQUIRE(rule.action);
  CHECK(rules::Engine::idempotent(rule));
  CHECK(ok.config->section<GreetingSection>("greeting")->greeting == "hello");

  auto bad = rules::load_config_text(R"(greting: {text: x}
rules:
  - name: two
    event: inbound
    greet: {name: x}
    request: {url: "http://127.0.0.1/"}
  - name: none
    event: inbound
  - name: lonely
    event: inbound
    greet: {name: x}
)",
                                     "t.yaml", no_env, registry);
  REQUIRE(bad.errors.size() == 4);
  CHECK(bad.errors[0].format() ==
        "t.yaml:1:1: error: unknown key \"greting\"; known: server, storage, cluster, http, "
        "dispatcher, rules, greeting");
  CHECK(bad.errors[1].message == "rule \"two\" has more than one action: request, greet");
  CHECK(bad.errors[2].message == "rule \"none\" needs one action; known: request, greet");
  CHECK(bad.errors[3].format() ==
        "t.yaml:11:12: error: \"greet\" needs a top-level \"greeting\" section");

  // Without the connector the key is unknown, and the message says which keys are.
  auto core = rules::load_config_text(kYaml, "t.yaml", no_env);
  REQUIRE_FALSE(core.errors.empty());
  CHECK(core.errors[0].message.find("unknown key \"greeting\"") != std::string::npos);
}

TEST_CASE("the engine runs a typed action and extracts from its response", "[extension]") {
  auto registry = test_registry();
  auto loaded = rules::load_config_text(kYaml, "t.yaml", no_env, registry);
  REQUIRE(loaded.config);
  rules::Engine engine(loaded.config->rules, loaded.config->secrets, nullptr);
  rules::CallContext call;
  auto outcomes = engine.run({"inbound", "C1", "0312345678", false, {}}, call);
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].status == rules::RuleStatus::succeeded);
  CHECK(call.vars["GREETING"] == "hello 0312345678");
  CHECK(call.vars["RESPONSE_SAID"] == "hello 0312345678");
  CHECK(call.vars["RESPONSE_STATUS"] == "200");
}

TEST_CASE("services enrich events, observers follow them, routes are mounted", "[extension]") {
  TempDir dir;
  auto registry = test_registry();
  auto loaded = rules::load_config_text(
      "server: {tokens: [\"ext-token-0123456789\"]}\nstorage: {path: \"" + dir.path() +
          "/j.db\", fsync: false}\ndispatcher: {workers: 2, queue_capacity: 100}\n" + kYaml,
      "t.yaml", no_env, registry);
  REQUIRE(loaded.config);
  std::string error;
  bridge::AppOptions options;
  options.listen = "127.0.0.1:0";
  auto app = bridge::App::create(std::move(*loaded.config), registry, options, error);
  REQUIRE(app);
  REQUIRE(app->start(error));
  bridge::Journal* journal = &app->journal();
  bridge::Intake& intake = app->intake();
  bridge::JournalStore& store = app->store();

  // A service's submitted event is durable, runs the rules, and is observed to the end.
  auto recorder = std::make_shared<Recorder>();
  rules::SubmitRejection rejection;
  auto submitted =
      intake.submit({"inbound", "C9", "0311112222", std::nullopt, {}}, recorder, rejection);
  REQUIRE(submitted);
  CHECK(rejection.code.empty());
  REQUIRE(recorder->wait());
  CHECK(recorder->rules == std::vector<std::string>{"greet-caller"});
  CHECK(recorder->finished->at("TAGGED") == "tag:inbound");
  CHECK(recorder->finished->at("GREETING") == "hello 0311112222");
  CHECK(journal->events_of_call("C9").size() == 1);
  // Services note things about an event; the call's history shows them.
  REQUIRE(
      store.put(rules::kEventNotes, submitted->event_id + "/answer", "{\"status\":200}", error));
  REQUIRE(store.put(rules::kEventNotes, "ev-999/answer", "{\"status\":500}", error));
  bool found = false;
  auto history =
      nlohmann::json::parse(bridge::call_history(*journal, "C9", found, rules::SecretSet{}));
  REQUIRE(found);
  CHECK(history["events"][0]["notes"] == nlohmann::json::parse(R"({"answer":{"status":200}})"));

  // An event no rule listens to is finished at intake; its variables reach the call's next event.
  auto quiet = intake.submit({"note", "C5", "0355556666", true, {{"A", "1"}}}, nullptr, rejection);
  REQUIRE(quiet);
  CHECK(journal->pending_events().empty());
  CHECK(journal->events_of_call("C5").at(0).state == bridge::EventState::done);
  auto next = std::make_shared<Recorder>();
  REQUIRE(intake.submit({"inbound", "C5", "", std::nullopt, {}}, next, rejection));
  REQUIRE(next->wait());
  CHECK(next->finished->at("GREETING") == "hello 0355556666");
  CHECK(next->finished->at("A") == "1");
  CHECK(next->finished->at("ISANSWERED") == "1");
  CHECK(next->finished->at("EVENT") == "inbound");
  // A withheld number on a new call gets the defaults.
  REQUIRE(intake.submit({"note", "C6", "", std::nullopt, {}}, nullptr, rejection));
  auto c6 = nlohmann::json::parse(journal->call_vars("C6").value());
  CHECK(c6 ==
        nlohmann::json::parse(R"({"TEL":"anonymous","ISANSWERED":"0","ID":"C6","EVENT":"note"})"));

  // The key-value store is durable state for connectors.
  REQUIRE(store.put("test", "k1", "v1", error));
  REQUIRE(store.put("test", "k1", "v2", error));
  REQUIRE(store.put("test", "k2", "w", error));
  CHECK(store.get("test", "k1") == "v2");
  CHECK(store.scan("test").size() == 2);
  REQUIRE(store.erase("test", "k2", error));
  CHECK_FALSE(store.get("test", "k2"));

  httplib::Client http("127.0.0.1", app->server().port());
  http.set_tcp_nodelay(true);
  auto open = http.Get("/v1/test/open?q=x");
  REQUIRE(open);
  CHECK(open->status == 200);
  CHECK(open->body == "{\"open\":\"x\"}");
  auto denied = http.Post("/v1/test/items/abc", "{}", "application/json");
  REQUIRE(denied);
  CHECK(denied->status == 401);
  httplib::Headers pigeon{{"X-Authorization", "Token ext-token-0123456789"}};
  auto created = http.Post("/v1/test/items/abc", pigeon, "{}", "application/json");
  REQUIRE(created);
  CHECK(created->status == 201);
  CHECK(created->body == "{\"item\":\"abc\"}");
  auto empty = http.Post("/v1/test/items/abc", pigeon, "", "application/json");
  REQUIRE(empty);
  CHECK(empty->status == 400);
  CHECK(nlohmann::json::parse(empty->body)["error"]["code"] == "empty");
  auto text = http.Get("/metrics", pigeon);
  REQUIRE(text);
  CHECK(text->body.find("test_tag_service 1\n") != std::string::npos);
  CHECK(app->stop());
}
