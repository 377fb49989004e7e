// Kompira Pigeon as the chain backend, against a fake Pigeon speaking its HTTP API on loopback.
#include <catch2/catch.hpp>

#include "connectors/escalation/pigeon_client.h"
#include "tests/fakes/fake_pigeon.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge;
using namespace callbridge::escalation;
using callbridge::testing::FakePigeon;
using namespace std::chrono_literals;

namespace {

const char* kCallflow = "b8893b03-daca-489f-b41d-1043e6eafa3e";
const char* kGuidance = "fd09003c-1ef2-4988-8b30-4a9fbe9da402";

void tutorial(FakePigeon& pigeon) {
  pigeon.add_contact("c-01", "担当者 01", "090-1111-0001");
  pigeon.add_contact("c-02", "担当者 02", "090-1111-0002");
  pigeon.add_callflow(kCallflow, "障害連絡", 5, {"c-02", "c-01"});
  pigeon.add_guidance(kGuidance, "障害通知", "{{node}}で障害が発生しました。",
                      {{1, {"terminate", "終了します"}},
                       {2, {"continue", "継続します"}},
                       {3, {"leave", "離脱します"}}});
  pigeon.script("c-02", {"key 2", "key 2", "key 1"});
  pigeon.script("c-01", {"key 3"});
}

struct Harness {
  FakePigeon pigeon{"secret-token"};
  http::HttpClient client;
  ManualTimerQueue timers;
  callbridge::testing::MemoryStore kv;
  KeyValueChainStore store{kv};
  std::unique_ptr<PigeonClient> remote;
  std::unique_ptr<Engine> engine;
  std::vector<ChainState> finished;

  explicit Harness(std::string token = "secret-token") {
    tutorial(pigeon);
    remote = std::make_unique<PigeonClient>(PigeonSettings{pigeon.base_url(), token, 5s}, client);
    EngineSettings settings;
    settings.poll_interval = 15s;
    settings.poll_max_interval = 60s;
    engine = std::make_unique<Engine>(settings, timers, store, nullptr, remote.get());
    engine->set_finished_handler([this](const ChainState& s) {
      finished.push_back(s);
      return true;
    });
  }
  std::string start(ChainRequest r) {
    std::string error;
    auto s = engine->start(std::move(r), error);
    INFO(error);
    REQUIRE(s);
    return s->id;
  }
};

ChainRequest by_ids() {
  ChainRequest r;
  r.callflow.id = kCallflow;
  r.guidance.id = kGuidance;
  r.parameters = {{"node", "ウェブサーバ"}};
  r.origin_call_id = "C9";
  return r;
}

}  // namespace

TEST_CASE("pigeon: a chain by ids runs on Pigeon and is polled until isActive is false",
          "[escalation][pigeon]") {
  Harness h;
  h.pigeon.set_polls_until_done(2);
  auto id = h.start(by_ids());
  REQUIRE(h.timers.run_until([&] { return !h.engine->get(id)->active(); }));
  auto s = *h.engine->get(id);
  CHECK(s.status == ChainStatus::succeeded);
  CHECK(s.backend == "pigeon");
  CHECK(s.key == 1);
  CHECK(s.terminated_by == "c-02");
  CHECK(s.loops() == 3);
  REQUIRE(s.attempts.size() == 4);
  CHECK(s.attempts[1].contact_id == "c-01");
  CHECK(s.attempts[1].reaction == Reaction::leave);
  CHECK(s.attempts[1].message == "ウェブサーバで障害が発生しました。");
  CHECK(s.callflow.contacts.size() == 2);  // Pigeon's definition, learnt from the result
  CHECK(h.pigeon.calls() == std::vector<std::string>{"c-02@1", "c-01@1", "c-02@2", "c-02@3"});
  REQUIRE(h.finished.size() == 1);

  auto requests = h.pigeon.requests();
  REQUIRE(requests.size() == 4);  // invoke, then 3 polls (2 active)
  CHECK(requests[0].method == "POST");
  CHECK(requests[0].path == "/api/apps/pigeon/chain/invoke");
  for (const auto& r : requests) {
    CHECK(r.headers.find("x-authorization")->second == "Token secret-token");
  }
  CHECK(requests[1].path == "/api/apps/pigeon/results/" + s.remote_id);
  auto body = nlohmann::json::parse(requests[0].body);
  CHECK(body ==
        nlohmann::json::parse(R"({"params":{"callflowId":"b8893b03-daca-489f-b41d-1043e6eafa3e",)"
                              R"("guidanceId":"fd09003c-1ef2-4988-8b30-4a9fbe9da402",)"
                              R"("parameters":{"node":"ウェブサーバ"}}})"));
  CHECK(s.remote_polls == 3);
}

TEST_CASE("pigeon: polls back off from the interval to the maximum", "[escalation][pigeon]") {
  Harness h;
  h.pigeon.set_polls_until_done(6);
  Millis t0 = h.timers.now();
  std::vector<Millis> polled;
  auto id = h.start(by_ids());
  h.timers.run_until([&] {
    auto s = h.engine->get(id);
    if (polled.size() < static_cast<std::size_t>(s->remote_polls))
      polled.push_back(h.timers.now() - t0);
    return !s->active();
  });
  // 15 s, then x1.5 per poll up to 60 s.
  CHECK(polled == std::vector<Millis>{15'000, 30'000, 52'500, 86'250, 136'875, 196'875, 256'875});
}

TEST_CASE("pigeon: an inline call flow and guidance are sent inline", "[escalation][pigeon]") {
  Harness h;
  h.pigeon.script("inline-1", {"key 1"});
  ChainRequest r;
  r.callflow.loop_limit = 2;
  r.callflow.contacts = {Contact{"inline-1", "当番", "090-9999-0000"}};
  r.guidance.message = "{{msg}}";
  r.guidance.responses[1] = KeyResponse{Reaction::terminate, ""};
  r.parameters = {{"msg", "DB 停止"}};
  auto id = h.start(r);
  REQUIRE(h.timers.run_until([&] { return !h.engine->get(id)->active(); }));
  CHECK(h.engine->get(id)->status == ChainStatus::succeeded);
  auto params = h.pigeon.invocations().at(0);
  CHECK(params["callflow"]["loopLimit"] == 2);
  CHECK(params["callflow"]["contacts"][0]["phoneNumber"] == "090-9999-0000");
  CHECK(params["guidance"]["messageTemplate"] == "{{msg}}");
  CHECK(params["guidance"]["reactions"][0]["type"] == "terminate");
  CHECK(h.engine->get(id)->attempts.at(0).message == "DB 停止");
}

TEST_CASE("pigeon: no one terminates: the chain fails like Pigeon says", "[escalation][pigeon]") {
  Harness h;
  h.pigeon.script("c-02", {"no-answer"});
  h.pigeon.script("c-01", {"no-key"});
  auto id = h.start(by_ids());
  REQUIRE(h.timers.run_until([&] { return !h.engine->get(id)->active(); }));
  auto s = *h.engine->get(id);
  CHECK(s.status == ChainStatus::failed);
  CHECK(s.attempts.size() == 10);
  CHECK(s.attempts[0].outcome == AttemptOutcome::missed);
  CHECK(s.attempts[1].outcome == AttemptOutcome::ignored);
  CHECK_FALSE(s.key);
}

TEST_CASE("pigeon: abort goes to Pigeon", "[escalation][pigeon]") {
  Harness h;
  h.pigeon.set_polls_until_done(100);
  auto id = h.start(by_ids());
  h.timers.advance(16s);  // invoked and polled once
  REQUIRE(!h.engine->get(id)->remote_id.empty());
  std::string error;
  int status = 0;
  REQUIRE(h.engine->abort(id, error, status));
  CHECK(h.pigeon.aborts() == 1);
  CHECK(h.engine->get(id)->status == ChainStatus::aborted);
  auto requests = h.pigeon.requests();
  CHECK(requests.back().path == "/api/apps/pigeon/chain/abort");
  CHECK(nlohmann::json::parse(requests.back().body)["params"]["resultId"] ==
        h.engine->get(id)->remote_id);
  h.timers.run_until([] { return false; });
  CHECK(h.pigeon.requests().size() == requests.size());  // no more polls
}

TEST_CASE("pigeon: a refused token fails the chain without retrying", "[escalation][pigeon]") {
  Harness h("wrong");
  auto id = h.start(by_ids());
  REQUIRE(h.timers.run_until([&] { return !h.engine->get(id)->active(); }));
  auto s = *h.engine->get(id);
  CHECK(s.status == ChainStatus::failed);
  CHECK(s.reason.find("Pigeon invoke failed: HTTP 401") == 0);
  CHECK(h.pigeon.requests().size() == 1);
  CHECK(h.pigeon.calls().empty());
}

TEST_CASE("pigeon: a restart resumes polling and never invokes twice", "[escalation][pigeon]") {
  FakePigeon pigeon("t");
  tutorial(pigeon);
  pigeon.set_polls_until_done(3);
  http::HttpClient client;
  callbridge::testing::MemoryStore kv;
  KeyValueChainStore store{kv};
  PigeonClient remote(PigeonSettings{pigeon.base_url(), "t", 5s}, client);
  std::string id;
  {
    ManualTimerQueue timers;
    Engine engine(EngineSettings{}, timers, store, nullptr, &remote);
    std::string error;
    id = engine.start(by_ids(), error)->id;
    timers.advance(16s);
    CHECK(engine.get(id)->remote_polls == 1);
  }
  ManualTimerQueue timers;
  Engine engine(EngineSettings{}, timers, store, nullptr, &remote);
  engine.recover();
  REQUIRE(timers.run_until([&] { return !engine.get(id)->active(); }));
  CHECK(engine.get(id)->status == ChainStatus::succeeded);
  CHECK(pigeon.invocations().size() == 1);
}

TEST_CASE("pigeon: timestamps in results are read", "[escalation][pigeon]") {
  CHECK(parse_iso8601("2024-05-01T09:00:01.500Z") == 1714554001500);
  CHECK(parse_iso8601("2024-05-01T18:00:01+09:00") == 1714554001000);
  CHECK(parse_iso8601("garbage") == 0);
}
