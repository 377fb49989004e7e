// Aborting a chain that Kompira Pigeon runs: the call Pigeon was placing ends as aborted too
// (the result is not polled again), as the console's chain page shows it.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "connectors/escalation/engine.h"
#include "connectors/escalation/pigeon_client.h"
#include "connectors/escalation/store.h"
#include "connectors/escalation/timer_queue.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge;
using namespace callbridge::escalation;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

struct NoTransport final : http::Transport {
  http::Outcome perform(const http::Request&) override { return {}; }
};

// Pigeon calling its first contact, no answer yet, until told to abort.
struct CallingPigeon final : RemoteChains {
  NoTransport transport;
  PigeonClient reader{PigeonSettings{"http://127.0.0.1:1", "t", 1s}, transport};
  int aborts = 0;
  Invoked invoke(const ChainState&) override { return {"result-1", "", false}; }
  Polled poll(const std::string&) override {
    json call{{"contactId", "c-01"},
              {"displayName", "担当者 01"},
              {"phoneNumber", "090-1111-0001"},
              {"loop", 1},
              {"startedAt", "2026-11-30T01:00:00Z"},
              {"result", nullptr}};
    return {true, "", json{{"isActive", true}, {"status", "calling"}, {"history", {call}}}};
  }
  bool abort(const std::string&, std::string&) override {
    ++aborts;
    return true;
  }
  bool apply(const json& result, ChainState& state) const override {
    return reader.apply(result, state);
  }
};

}  // namespace

TEST_CASE("pigeon: an abort ends the call Pigeon was placing as aborted", "[escalation][pigeon]") {
  ManualTimerQueue timers;
  callbridge::testing::MemoryStore kv;
  KeyValueChainStore store{kv};
  CallingPigeon pigeon;
  EngineSettings settings;
  settings.poll_interval = 1s;
  Engine engine(settings, timers, store, nullptr, &pigeon);
  ChainRequest request;
  request.callflow.id = "flow-1";
  request.guidance.id = "guide-1";
  std::string error;
  auto started = engine.start(std::move(request), error);
  INFO(error);
  REQUIRE(started);
  timers.advance(2s);  // invoked and polled
  auto running = engine.get(started->id);
  REQUIRE(running->attempts.size() == 1);
  CHECK_FALSE(running->attempts[0].outcome);

  int status = 0;
  REQUIRE(engine.abort(started->id, error, status));
  CHECK(pigeon.aborts == 1);
  auto ended = engine.get(started->id);
  CHECK(ended->status == ChainStatus::aborted);
  REQUIRE(ended->attempts.size() == 1);
  CHECK(ended->attempts[0].outcome == AttemptOutcome::aborted);
  CHECK(ended->attempts[0].ended_at > 0);
}
