// The escalation engine with the simulated dialer: Kompira Pigeon's semantics (000 seed),
// timing, abort, durability across a restart, and scale.
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <set>

#include "connectors/escalation/engine.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge::escalation;
using namespace std::chrono_literals;

namespace {

ScriptedAnswer answer(const std::string& text) {
  std::string error;
  auto a = ScriptedAnswer::parse(text, error);
  REQUIRE(a);
  return *a;
}

std::vector<ScriptedAnswer> answers(std::initializer_list<const char*> texts) {
  std::vector<ScriptedAnswer> out;
  for (const char* t : texts) out.push_back(answer(t));
  return out;
}

Contact contact(const std::string& id) {
  return Contact{id, "担当者" + id, "090-0000-00" + id};
}

CallFlow flow(std::vector<std::string> ids, int loops) {
  CallFlow f;
  f.id = "flow";
  f.name = "障害連絡";
  for (const auto& id : ids) f.contacts.push_back(contact(id));
  f.loop_limit = loops;
  return f;
}

// 1: terminate, 2: continue, 3: leave (the manual's tutorial guidance).
Guidance guidance() {
  Guidance g;
  g.id = "guide";
  g.message = "{{node}}で障害を検出しました。対応する場合は1を押してください。";
  g.responses[1] = KeyResponse{Reaction::terminate, "{{node}}の対応をお願いします。"};
  g.responses[2] = KeyResponse{Reaction::continue_on, "次の担当者に連絡します。"};
  g.responses[3] = KeyResponse{Reaction::leave, "離脱しました。"};
  return g;
}

struct Harness {
  ManualTimerQueue timers;
  callbridge::testing::MemoryStore kv;
  KeyValueChainStore store{kv};
  EngineSettings settings;
  std::unique_ptr<SimulatedDialer> dialer;
  std::unique_ptr<Engine> engine;
  std::vector<ChainState> finished;

  explicit Harness(SimulatedDialer::Script script = {}) {
    settings.ring_timeout = 30s;
    dialer = std::make_unique<SimulatedDialer>(timers, std::move(script));
    make_engine();
  }
  void make_engine() {
    engine = std::make_unique<Engine>(settings, timers, store, dialer.get());
    engine->set_finished_handler([this](const ChainState& s) {
      finished.push_back(s);
      return true;
    });
  }
  ChainState start(CallFlow f, Guidance g = guidance(), Parameters p = {{"node", "ウェブサーバ"}}) {
    ChainRequest r{std::move(f), std::move(g), std::move(p), "C1", "vip"};
    std::string error;
    auto s = engine->start(std::move(r), error);
    INFO(error);
    REQUIRE(s);
    return *s;
  }
  ChainState run(const std::string& id) {
    REQUIRE(timers.run_until([&] { return !engine->get(id)->active(); }));
    return *engine->get(id);
  }
};

std::vector<std::string> trail(const ChainState& s) {
  std::vector<std::string> out;
  for (const auto& a : s.attempts)
    out.push_back(a.contact_id + "@" + std::to_string(a.loop) + ":" +
                  std::string(to_string(*a.outcome)) + (a.key ? std::to_string(*a.key) : ""));
  return out;
}

}  // namespace

TEST_CASE("escalation: the manual's tutorial chain (continue, leave, terminate in loop 3)",
          "[escalation]") {
  // 000 seed 5.5: 担当者02 (2: continue) -> 担当者01 (3: leave) -> 02 (2) -> 02 (1: terminate).
  Harness h({{"02", answers({"key 2", "key 2", "key 1"})}, {"01", answers({"key 3"})}});
  auto s = h.run(h.start(flow({"02", "01"}, 5)).id);
  CHECK(s.status == ChainStatus::succeeded);
  CHECK(trail(s) == std::vector<std::string>{"02@1:succeeded2", "01@1:succeeded3",
                                             "02@2:succeeded2", "02@3:succeeded1"});
  CHECK(s.key == 1);
  CHECK(s.terminated_by == "02");
  CHECK(s.loops() == 3);
  CHECK(s.left == std::set<std::string>{"01"});
  CHECK(s.attempts[0].message ==
        "ウェブサーバで障害を検出しました。対応する場合は1を押してください。");
  CHECK(s.attempts[3].response_message == "ウェブサーバの対応をお願いします。");
  CHECK(s.attempts[3].reaction == Reaction::terminate);
  REQUIRE(h.finished.size() == 1);
  CHECK(h.finished[0].status == ChainStatus::succeeded);
  CHECK(h.dialer->dialed().size() == 4);
}

TEST_CASE("escalation: terminate ends the chain at once: later contacts are not called",
          "[escalation]") {
  Harness h({{"A", answers({"no-answer"})}, {"B", answers({"key 1"})}});
  auto s = h.run(h.start(flow({"A", "B", "C"}, 3)).id);
  CHECK(s.status == ChainStatus::succeeded);
  CHECK(trail(s) == std::vector<std::string>{"A@1:missed", "B@1:succeeded1"});
  CHECK(s.terminated_by == "B");
  for (const auto& d : h.dialer->dialed()) CHECK(d.contact_id != "C");
}

TEST_CASE("escalation: no one answers: every contact in every loop, then failure", "[escalation]") {
  Harness h;  // unscripted contacts do not answer
  h.settings.pause_between_calls = 10s;
  h.settings.pause_between_loops = 60s;
  h.make_engine();
  Millis t0 = h.timers.now();
  auto s = h.run(h.start(flow({"A", "B"}, 3)).id);
  CHECK(s.status == ChainStatus::failed);
  CHECK(trail(s) == std::vector<std::string>{"A@1:missed", "B@1:missed", "A@2:missed", "B@2:missed",
                                             "A@3:missed", "B@3:missed"});
  CHECK(s.reason == "no one terminated the chain in 3 loops");
  CHECK_FALSE(s.key);
  // Each call rings out after 30 s; 10 s between calls, 60 s between loops.
  std::vector<Millis> starts;
  for (const auto& a : s.attempts) starts.push_back(a.started_at - t0);
  CHECK(starts == std::vector<Millis>{0, 40'000, 130'000, 170'000, 260'000, 300'000});
  CHECK(s.attempts[0].ended_at - s.attempts[0].started_at == 30'000);
  CHECK(h.finished.size() == 1);
}

TEST_CASE("escalation: voicemail and keys without a response count as ignored: continue",
          "[escalation]") {
  Harness h({{"A", answers({"voicemail", "key 1"})}, {"B", answers({"key 7"})}});
  auto s = h.run(h.start(flow({"A", "B"}, 2)).id);
  CHECK(trail(s) == std::vector<std::string>{"A@1:ignored", "B@1:ignored7", "A@2:succeeded1"});
  CHECK(s.attempts[1].error == "key 7 has no response");
  CHECK(s.status == ChainStatus::succeeded);
}

TEST_CASE("escalation: a failed call moves on to the next contact", "[escalation]") {
  Harness h({{"A", answers({"fail"})}, {"B", answers({"key 1"})}});
  auto s = h.run(h.start(flow({"A", "B"}, 1)).id);
  CHECK(trail(s) == std::vector<std::string>{"A@1:failed", "B@1:succeeded1"});
}

TEST_CASE("escalation: leave skips the contact in later loops: all leave ends in failure",
          "[escalation]") {
  Harness h({{"A", answers({"key 3"})}, {"B", answers({"key 2", "key 3"})}});
  auto s = h.run(h.start(flow({"A", "B"}, 5)).id);
  CHECK(trail(s) == std::vector<std::string>{"A@1:succeeded3", "B@1:succeeded2", "B@2:succeeded3"});
  CHECK(s.status == ChainStatus::failed);
  CHECK(s.reason == "every contact left the chain");
}

TEST_CASE("escalation: a one-loop flow whose only contact continues fails", "[escalation]") {
  Harness h({{"A", answers({"key 2"})}});
  auto s = h.run(h.start(flow({"A"}, 1)).id);
  CHECK(s.status == ChainStatus::failed);
  CHECK(s.reason == "no one terminated the chain in 1 loop");
}

TEST_CASE("escalation: abort while a call rings", "[escalation]") {
  Harness h({{"A", answers({"key 1 after 20"})}});
  auto id = h.start(flow({"A", "B"}, 3)).id;
  h.timers.advance(5s);
  REQUIRE(h.engine->get(id)->phase == Phase::dialing);
  std::string error;
  int status = 0;
  REQUIRE(h.engine->abort(id, error, status));
  h.timers.run_until([] { return false; });  // drain: the late answer must change nothing
  auto s = *h.engine->get(id);
  CHECK(s.status == ChainStatus::aborted);
  CHECK(trail(s) == std::vector<std::string>{"A@1:aborted"});
  CHECK(h.dialer->dialed().size() == 1);
  REQUIRE(h.finished.size() == 1);
  CHECK(h.finished[0].status == ChainStatus::aborted);
  CHECK_FALSE(h.engine->abort(id, error, status));
  CHECK(status == 409);
  CHECK_FALSE(h.engine->abort("nope", error, status));
  CHECK(status == 404);
}

TEST_CASE("escalation: abort between calls", "[escalation]") {
  Harness h;
  h.settings.pause_between_calls = 60s;
  h.make_engine();
  auto id = h.start(flow({"A", "B"}, 3)).id;
  h.timers.advance(40s);  // A rang out at 30 s; B is due at 90 s
  std::string error;
  int status = 0;
  REQUIRE(h.engine->abort(id, error, status));
  h.timers.run_until([] { return false; });
  CHECK(trail(*h.engine->get(id)) == std::vector<std::string>{"A@1:missed"});
}

TEST_CASE("escalation: a restart mid-call never dials that call again", "[escalation]") {
  callbridge::testing::MemoryStore kv;
  KeyValueChainStore store{kv};
  EngineSettings settings;
  settings.ring_timeout = 30s;
  std::string id;
  std::vector<std::string> first_dials;
  {
    ManualTimerQueue timers;
    SimulatedDialer dialer(
        timers, {{"A", answers({"no-answer", "key 1"})}, {"B", answers({"key 1 after 10"})}});
    Engine engine(settings, timers, store, &dialer);
    std::string error;
    auto s = engine.start(ChainRequest{flow({"A", "B"}, 2), guidance(), {}, "C1", "vip"}, error);
    REQUIRE(s);
    id = s->id;
    // A rings out (30 s); B's call starts and rings: the process dies now.
    timers.advance(35s);
    REQUIRE(engine.get(id)->phase == Phase::dialing);
    for (const auto& d : dialer.dialed())
      first_dials.push_back(d.contact_id + "@" + std::to_string(d.loop));
    CHECK(first_dials == std::vector<std::string>{"A@1", "B@1"});
    timers.clear();
  }
  // The stored state says B was being called.
  auto stored = store.load(id);
  REQUIRE(stored);
  CHECK(stored->phase == Phase::dialing);
  CHECK(stored->attempts.size() == 2);

  ManualTimerQueue timers(1'700'000'100'000);
  SimulatedDialer dialer(timers,
                         {{"A", answers({"no-answer", "key 1"})}, {"B", answers({"key 1"})}});
  Engine engine(settings, timers, store, &dialer);
  std::vector<ChainState> finished;
  engine.set_finished_handler([&](const ChainState& s) {
    finished.push_back(s);
    return true;
  });
  CHECK(engine.recover().empty());
  REQUIRE(timers.run_until([&] { return !engine.get(id)->active(); }));
  auto s = *engine.get(id);
  CHECK(trail(s) == std::vector<std::string>{"A@1:missed", "B@1:failed", "A@2:succeeded1"});
  CHECK(s.attempts[1].error == "interrupted by restart");
  std::vector<std::string> second_dials;
  for (const auto& d : dialer.dialed())
    second_dials.push_back(d.contact_id + "@" + std::to_string(d.loop));
  CHECK(second_dials == std::vector<std::string>{"A@2"});
  CHECK(s.status == ChainStatus::succeeded);
  REQUIRE(finished.size() == 1);
  CHECK(store.load(id)->notified);
}

TEST_CASE("escalation: a waiting chain resumes after a restart at its due time", "[escalation]") {
  callbridge::testing::MemoryStore kv;
  KeyValueChainStore store{kv};
  EngineSettings settings;
  settings.ring_timeout = 30s;
  settings.pause_between_calls = 120s;
  std::string id;
  {
    ManualTimerQueue timers;
    SimulatedDialer dialer(timers, {});
    Engine engine(settings, timers, store, &dialer);
    std::string error;
    id = engine.start(ChainRequest{flow({"A", "B"}, 1), guidance(), {}, "C1", "vip"}, error)->id;
    timers.advance(40s);
    CHECK(engine.get(id)->phase == Phase::waiting);
  }
  ManualTimerQueue timers(1'700'000'040'000);
  SimulatedDialer dialer(timers, {{"B", answers({"key 1"})}});
  Engine engine(settings, timers, store, &dialer);
  engine.recover();
  timers.advance(100s);
  CHECK(dialer.dialed().empty());  // B is due at 150 s
  timers.advance(20s);
  CHECK(dialer.dialed().size() == 1);
  timers.run_until([&] { return !engine.get(id)->active(); });
  CHECK(engine.get(id)->status == ChainStatus::succeeded);
}

TEST_CASE("escalation: nothing is dialed until the attempt is durable", "[escalation]") {
  Harness h({{"A", answers({"key 1"})}});
  h.settings.store_retry = 5s;
  h.make_engine();
  auto id = h.start(flow({"A"}, 1)).id;
  h.kv.fail_writes(true);
  h.timers.advance(12s);
  CHECK(h.dialer->dialed().empty());
  CHECK(h.engine->get(id)->attempts.empty());
  h.kv.fail_writes(false);
  h.timers.run_until([&] { return !h.engine->get(id)->active(); });
  CHECK(h.dialer->dialed().size() == 1);
  CHECK(h.engine->get(id)->status == ChainStatus::succeeded);
  CHECK(h.store.load(id)->status == ChainStatus::succeeded);
}

TEST_CASE("escalation: a finished event that cannot be delivered is retried", "[escalation]") {
  Harness h({{"A", answers({"key 1"})}});
  int calls = 0;
  h.engine->set_finished_handler([&](const ChainState&) { return ++calls >= 3; });
  auto id = h.start(flow({"A"}, 1)).id;
  h.timers.run_until([&] { return calls >= 3; });
  CHECK(calls == 3);
  CHECK(h.store.load(id)->notified);
}

TEST_CASE("escalation: an invalid guidance or call flow is refused", "[escalation]") {
  Harness h;
  Guidance g = guidance();
  g.responses.erase(1);
  std::string error;
  CHECK_FALSE(h.engine->start(ChainRequest{flow({"A"}, 1), g, {}, "", ""}, error));
  CHECK(error == "a guidance needs at least one response of type terminate");
  CHECK_FALSE(h.engine->start(ChainRequest{flow({}, 1), guidance(), {}, "", ""}, error));
  CHECK(error == "a call flow needs at least one contact");
}

TEST_CASE("escalation: 10,000 concurrent chains on one timer queue", "[escalation]") {
  Harness h({{"A", answers({"no-answer"})}, {"B", answers({"key 1 after 5"})}});
  h.settings.history_limit = 100;
  h.make_engine();
  std::vector<std::string> ids;
  for (int i = 0; i < 10'000; ++i) ids.push_back(h.start(flow({"A", "B"}, 2)).id);
  h.timers.advance(1s);
  CHECK(h.engine->counts().running == 10'000);
  h.timers.run_until([&] { return h.finished.size() == 10'000; });
  REQUIRE(h.finished.size() == 10'000);
  auto c = h.engine->counts();
  CHECK(c.running == 0);
  CHECK(c.finished[static_cast<int>(ChainStatus::succeeded)] == 10'000);
  CHECK(c.attempts[static_cast<int>(AttemptOutcome::missed)] == 10'000);
  CHECK(h.engine->list(1000).size() == 100);  // memory keeps the newest 100
  CHECK(h.engine->get(ids.front())->status == ChainStatus::succeeded);  // the store has all
}

TEST_CASE("escalation: real threads and time", "[escalation]") {
  ThreadTimerQueue timers(3);
  callbridge::testing::MemoryStore kv;
  KeyValueChainStore store{kv};
  EngineSettings settings;
  SimulatedDialer dialer(timers, {{"A", answers({"no-key"})}, {"B", answers({"key 1"})}});
  Engine engine(settings, timers, store, &dialer);
  std::mutex mutex;
  std::condition_variable cv;
  std::size_t done = 0;
  engine.set_finished_handler([&](const ChainState&) {
    std::lock_guard lock(mutex);
    ++done;
    cv.notify_all();
    return true;
  });
  std::string error;
  for (int i = 0; i < 200; ++i)
    REQUIRE(engine.start(ChainRequest{flow({"A", "B"}, 2), guidance(), {}, "C", "r"}, error));
  std::unique_lock lock(mutex);
  REQUIRE(cv.wait_for(lock, 30s, [&] { return done == 200; }));
  lock.unlock();
  for (const auto& s : engine.list(1000))
    CHECK(trail(s) == std::vector<std::string>{"A@1:ignored", "B@1:succeeded1"});
  engine.stop();
  timers.stop();
}

TEST_CASE("escalation: {{key}} messages are not HTML-escaped", "[escalation]") {
  std::vector<std::string> missing;
  CHECK(render_message("{{node}} <{{ level }}> {{{raw}}} {{none}}!",
                       {{"node", "A&B"}, {"level", "<重大>"}, {"raw", "\"x\""}},
                       &missing) == "A&B <<重大>> \"x\" !");
  CHECK(missing == std::vector<std::string>{"none"});
  CHECK(render_message("{{unclosed", {}) == "{{unclosed");
}

TEST_CASE("escalation: scripted answers parse and reject", "[escalation]") {
  std::string error;
  CHECK(ScriptedAnswer::parse("key 3 after 2.5", error)->ring == 2500ms);
  CHECK(ScriptedAnswer::parse("4", error)->key == 4);
  CHECK(ScriptedAnswer::parse("voicemail", error)->kind == ScriptedAnswer::Kind::no_key);
  CHECK_FALSE(ScriptedAnswer::parse("key x", error));
  CHECK_FALSE(ScriptedAnswer::parse("hello", error));
  CHECK(error.find("unknown answer \"hello\"") == 0);
}

TEST_CASE("escalation: chain state survives JSON", "[escalation]") {
  Harness h({{"02", answers({"key 2", "key 1"})}, {"01", answers({"key 3"})}});
  auto s = h.run(h.start(flow({"02", "01"}, 5)).id);
  std::string error;
  auto back = chain_from_json(nlohmann::json::parse(to_json(s).dump()), error);
  REQUIRE(back);
  CHECK(to_json(*back) == to_json(s));
  CHECK(back->guidance.responses.at(3).reaction == Reaction::leave);
  CHECK(back->left == s.left);
  CHECK_FALSE(chain_from_json(nlohmann::json{{"id", "x"}}, error));
}

TEST_CASE("escalation: results are shaped like Kompira Pigeon's", "[escalation]") {
  Harness h({{"02", answers({"key 2", "key 1"})}, {"01", answers({"no-answer"})}});
  auto id = h.start(flow({"02", "01"}, 5)).id;
  h.timers.run_ready();
  auto running = pigeon_result(*h.engine->get(id));
  CHECK(running["isActive"] == true);
  CHECK(running["status"] == "running");
  CHECK(running["keyInput"].is_null());
  auto r = pigeon_result(h.run(id));
  CHECK(r["resultId"] == id);
  CHECK(r["isActive"] == false);
  CHECK(r["status"] == "succeeded");
  CHECK(r["keyInput"] == "1");
  CHECK(r["loopCount"] == 2);
  CHECK(r["terminatedBy"]["contactId"] == "02");
  CHECK(r["parameters"]["node"] == "ウェブサーバ");
  CHECK(r["callflow"]["loopLimit"] == 5);
  CHECK(r["guidance"]["reactions"][0] ==
        nlohmann::json{{"key", "1"},
                       {"type", "terminate"},
                       {"messageTemplate", "{{node}}の対応をお願いします。"}});
  REQUIRE(r["history"].size() == 3);
  CHECK(r["history"][0]["contactId"] == "02");
  CHECK(r["history"][0]["result"] == "succeeded");
  CHECK(r["history"][0]["keyInput"] == "2");
  CHECK(r["history"][0]["reaction"] == "continue");
  CHECK(r["history"][1]["result"] == "missed");
  CHECK(r["history"][1]["keyInput"].is_null());
  CHECK(r["history"][2]["loop"] == 2);
  CHECK(r["startedAt"] == "2023-11-14T22:13:20.000Z");
}
