// Escalation chains owned by lease, two nodes in one process (each its own engine, timer queue
// and dialer; one store and one lease table): a chain continues on the other node after its
// owner stops renewing, from its stored state; the stalled owner cannot write or dial again.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "connectors/escalation/engine.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge;
using namespace callbridge::escalation;
using namespace std::chrono_literals;

namespace {

constexpr auto kLease = 200ms;

Contact contact(const std::string& id) {
  return Contact{id, "担当者" + id, "090-0000-00" + id};
}

CallFlow flow(std::vector<std::string> ids, int loops) {
  CallFlow f;
  f.id = "flow";
  f.name = "当番";
  for (const auto& id : ids) f.contacts.push_back(contact(id));
  f.loop_limit = loops;
  return f;
}

Guidance guidance() {
  Guidance g;
  g.id = "guide";
  g.message = "障害です。対応する場合は1を押してください。";
  g.responses[1] = KeyResponse{Reaction::terminate, "お願いします。"};
  return g;
}

// One node: its leases (one table shared with the other node), store view, timers, dialer.
struct Node {
  Node(rules::Leases& leases, testing::MemoryStore& kv, Millis start)
      : store(kv, &leases), timers(start), dialer(timers, {}) {
    settings.ring_timeout = 30s;
    engine = std::make_unique<Engine>(settings, timers, store, &dialer);
    engine->set_finished_handler([this](const ChainState&) {
      ++notified;
      return true;
    });
  }
  std::vector<std::string> dialed() const {
    std::vector<std::string> out;
    for (const auto& d : dialer.dialed())
      out.push_back(d.contact_id + "@" + std::to_string(d.loop));
    return out;
  }

  KeyValueChainStore store;
  ManualTimerQueue timers;
  SimulatedDialer dialer;
  EngineSettings settings;
  std::unique_ptr<Engine> engine;
  int notified = 0;
};

}  // namespace

TEST_CASE("chains by lease: taken over after the owner stalls, each step dialled once",
          "[singleton][escalation]") {
  testing::MemoryStore kv;
  rules::LocalLeases a_leases(kv, "node-a", kLease);
  auto b_leases = a_leases.as("node-b");
  Node a(a_leases, kv, 1'700'000'000'000);
  Node b(*b_leases, kv, 1'700'000'000'000);
  CHECK(a.engine->recover().empty());
  CHECK(b.engine->recover().empty());

  std::string error;
  auto started =
      a.engine->start(ChainRequest{flow({"1", "2", "3"}, 2), guidance(), {}, "C1", "vip"}, error);
  REQUIRE(started);
  std::string id = started->id;
  a.timers.run_ready();  // contact 1 rings (nobody answers: 30 s)
  CHECK(a.dialed() == std::vector<std::string>{"1@1"});
  CHECK_FALSE(b_leases->acquire(KeyValueChainStore::lease_name(id)));  // A holds it

  // B looks while A's lease is live: it leaves the chain alone.
  b.timers.advance(1s);
  CHECK(b.dialed().empty());
  CHECK_FALSE(b.engine->get(id)->attempts.back().outcome);

  // A stalls (its timers stop: no renewal, no outcome). Past the lease B takes the chain over:
  // the ringing call is recorded failed, never placed again, and B calls the rest.
  std::this_thread::sleep_for(kLease * 2);
  REQUIRE(b.timers.run_until([&] {
    auto s = b.engine->get(id);
    return s && !s->active();
  }));
  auto done = *b.engine->get(id);
  CHECK(done.status == ChainStatus::failed);
  REQUIRE(done.attempts.size() == 6);
  CHECK(*done.attempts[0].outcome == AttemptOutcome::failed);
  CHECK(done.attempts[0].error == "interrupted: its node stopped");
  CHECK(b.dialed() == std::vector<std::string>{"2@1", "3@1", "1@2", "2@2", "3@2"});
  CHECK(b.notified == 1);

  // A wakes up: its stale outcome cannot be saved, it dials nobody and notifies nothing.
  a.timers.advance(60s);
  CHECK(a.dialed() == std::vector<std::string>{"1@1"});
  CHECK(a.notified == 0);
  CHECK(a.engine->counts().running == 0);
  auto stored = KeyValueChainStore(kv).load(id);
  REQUIRE(stored);
  CHECK(stored->attempts.size() == 6);
  CHECK(stored->notified);
}

TEST_CASE("chains by lease: a node that stops hands its chains over at once",
          "[singleton][escalation]") {
  testing::MemoryStore kv;
  rules::LocalLeases a_leases(kv, "node-a", 60s);  // far longer than the test
  auto b_leases = a_leases.as("node-b");
  Node a(a_leases, kv, 1'700'000'000'000);
  Node b(*b_leases, kv, 1'700'000'000'000);
  a.engine->recover();
  b.engine->recover();
  std::string error;
  auto id =
      a.engine->start(ChainRequest{flow({"1", "2"}, 1), guidance(), {}, "C1", "vip"}, error)->id;
  a.timers.run_ready();
  a.engine->stop();  // lets the lease go
  REQUIRE(b.timers.run_until([&] {
    auto s = b.engine->get(id);
    return s && !s->active();
  }));
  CHECK(a.dialed() == std::vector<std::string>{"1@1"});
  CHECK(b.dialed() == std::vector<std::string>{"2@1"});
}
