// PostgreSQL's batches and the cluster's no-rule append: append_idle_event finishes an event of
// an idle call in its append transaction and stores it pending behind earlier ones; a batch
// whose writes are sent at once still fails only the write that fails.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bridge/journal/journal.h"
#include "tests/fakes/each_backend.h"

using namespace callbridge::bridge;
using callbridge::testing::Backend;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Journal> postgres_journal(Backend& backend) {
  std::string skipped;
  if (!backend.prepare(skipped)) {
    WARN(skipped);
    return nullptr;
  }
  return backend.open();
}

nlohmann::json vars_of(Journal& journal, const std::string& call_id) {
  auto vars = journal.call_vars(call_id);
  return vars ? nlohmann::json::parse(*vars) : nlohmann::json();
}

}  // namespace

TEST_CASE("cluster journal: a no-rule event of an idle call is stored finished with its variables",
          "[cluster][postgres]") {
  Backend backend(JournalBackend::postgres);
  auto journal = postgres_journal(backend);
  if (!journal) return;
  std::string error;
  // An idle call: finished at once, defaults then the event's variables, no lease taken.
  auto first = journal->append_idle_event("A", "hangup", "{}", R"({"D":"default","K":"d"})",
                                          R"({"K":"first"})", "node-1", 10s, error);
  REQUIRE(first);
  CHECK(first->event.state == EventState::done);
  CHECK_FALSE(first->epoch);
  CHECK(first->event.call_pos == 1);
  CHECK(vars_of(*journal, "A") == nlohmann::json{{"D", "default"}, {"K", "first"}});
  CHECK(journal->pending_calls({}, 10).empty());
  CHECK(journal->acquire_lease("call:A", "node-2", 10s));  // nobody held it

  // Stored variables sit between the defaults and the event's: a later event keeps them.
  REQUIRE(journal->finish_event(first->event.seq, EventState::done, "A",
                                R"({"D":"default","K":"first","S":"stored"})", error));
  auto second = journal->append_idle_event("A", "hangup", "{}", R"({"D":"default","S":"d"})",
                                           R"({"E":"event"})", "node-1", 10s, error);
  REQUIRE(second);
  CHECK(second->event.state == EventState::done);
  CHECK(second->event.call_pos == 2);
  CHECK(vars_of(*journal, "A") ==
        nlohmann::json{{"D", "default"}, {"S", "stored"}, {"K", "first"}, {"E", "event"}});
  auto events = journal->events_of_call("A");
  REQUIRE(events.size() == 2);
  CHECK(events[1].state == EventState::done);
}

TEST_CASE("cluster journal: a no-rule event behind a pending one waits its turn",
          "[cluster][postgres]") {
  Backend backend(JournalBackend::postgres);
  auto journal = postgres_journal(backend);
  if (!journal) return;
  std::string error;
  auto pending = journal->append_event_leased("B", "inbound", "{}", "node-1", 10s, error);
  REQUIRE(pending);
  REQUIRE(pending->epoch);
  // Another node: stored pending, the call stays node-1's and node-1 is told.
  auto other =
      journal->append_idle_event("B", "hangup", "{}", "{}", R"({"K":"v"})", "node-2", 10s, error);
  REQUIRE(other);
  CHECK(other->event.state == EventState::pending);
  CHECK_FALSE(other->epoch);
  CHECK(other->earlier_pending == 1);
  CHECK(other->event.call_pos == 2);
  // The holder itself: pending under its epoch.
  auto own = journal->append_idle_event("B", "hangup", "{}", "{}", "{}", "node-1", 10s, error);
  REQUIRE(own);
  CHECK(own->event.state == EventState::pending);
  CHECK(own->epoch == pending->epoch);
  CHECK(journal->pending_events_of("B").size() == 3);
  CHECK_FALSE(journal->call_vars("B"));  // nothing written for the call yet
}

TEST_CASE("postgres journal: concurrent batches fail only their failing writes",
          "[cluster][postgres]") {
  Backend backend(JournalBackend::postgres);
  auto journal = postgres_journal(backend);
  if (!journal) return;
  // Writers at once so that batches hold many writes; every seventh body is not valid UTF-8,
  // which the server refuses, in the middle of whatever batch it lands in.
  constexpr int kThreads = 24, kEach = 30;
  std::atomic<int> stored{0}, refused{0}, wrong{0};
  std::vector<std::thread> threads;
  std::mutex seqs_mutex;
  std::set<std::int64_t> seqs;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        bool bad = (t * kEach + i) % 7 == 3;
        std::string error;
        std::string call = "C" + std::to_string(t % 5);
        auto e = (i % 2 == 0)
                     ? journal->append_event_leased(call, "step", bad ? "{\"x\":\"\xff\"}" : "{}",
                                                    "node-1", 10s, error)
                     : journal->append_idle_event(call, "hangup", bad ? "{\"x\":\"\xff\"}" : "{}",
                                                  "{}", "{}", "node-1", 10s, error);
        if (bad) {
          (e ? wrong : refused)++;
        } else if (e) {
          stored++;
          std::lock_guard lock(seqs_mutex);
          seqs.insert(e->event.seq);
        } else {
          wrong++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
  CHECK(refused > 0);
  CHECK(stored + refused == kThreads * kEach);
  // Each call's positions are 1..n with no gap or repeat, and every acknowledged event is there.
  std::size_t found = 0;
  for (int c = 0; c < 5; ++c) {
    auto events = journal->events_of_call("C" + std::to_string(c));
    for (std::size_t i = 0; i < events.size(); ++i) {
      CHECK(events[i].call_pos == static_cast<std::int64_t>(i + 1));
      found += seqs.count(events[i].seq);
    }
  }
  CHECK(found == seqs.size());
  CHECK(found == static_cast<std::size_t>(stored.load()));
}
