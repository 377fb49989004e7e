// The journal's cluster-mode calls on PostgreSQL (journal.h "Cluster mode"): an event appended
// with its call's lease in one statement, fenced records and finishes, the poller's reads, the
// conditional release, and the NOTIFY hint.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "bridge/journal/journal.h"
#include "tests/fakes/each_backend.h"

using namespace callbridge::bridge;
using callbridge::testing::Backend;
using namespace std::chrono_literals;

namespace {

// PostgreSQL only: nullptr (with a warning) when it cannot run here.
std::unique_ptr<Journal> postgres_journal(Backend& backend) {
  std::string skipped;
  if (!backend.prepare(skipped)) {
    WARN(skipped);
    return nullptr;
  }
  return backend.open();
}

ActionRecord started(std::int64_t seq) {
  ActionRecord a;
  a.event_seq = seq;
  a.rule = "crm";
  a.state = ActionState::started;
  a.started_at_ms = 1;
  return a;
}

}  // namespace

TEST_CASE("cluster journal: an append takes the call's lease unless another node holds it",
          "[cluster][postgres]") {
  Backend backend(JournalBackend::postgres);
  auto journal = postgres_journal(backend);
  if (!journal) return;
  std::string error;
  auto first = journal->append_event_leased("A", "step", "{}", "node-1", 10s, error);
  REQUIRE(first);
  REQUIRE(first->epoch);
  CHECK(first->event.call_pos == 1);
  CHECK(first->earlier_pending == 0);
  // The owner appends again: same epoch; the first event is still pending before it.
  auto second = journal->append_event_leased("A", "step", "{}", "node-1", 10s, error);
  REQUIRE(second);
  CHECK(second->epoch == first->epoch);
  CHECK(second->event.call_pos == 2);
  CHECK(second->earlier_pending == 1);
  // Another node stores the third event only; the call stays node-1's.
  auto third = journal->append_event_leased("A", "step", "{}", "node-2", 10s, error);
  REQUIRE(third);
  CHECK_FALSE(third->epoch);
  CHECK(third->event.call_pos == 3);

  auto pending = journal->pending_events_of("A");
  REQUIRE(pending.size() == 3);
  CHECK(pending[2].call_pos == 3);
  auto calls = journal->pending_calls({}, 10);
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].call_id == "A");
  CHECK(calls[0].last_pos == 3);
  CHECK(calls[0].owner == "node-1");
  CHECK(calls[0].epoch == *first->epoch);
  CHECK(journal->pending_calls({"B"}, 10).empty());
  CHECK(journal->pending_calls({"A", "B"}, 10).size() == 1);

  // Not released while events are pending; finished under the fence, then released.
  CHECK_FALSE(journal->release_call_lease("A", *first->epoch));
  Fence fence{"call:A", *first->epoch};
  for (const auto& e : pending) {
    REQUIRE(journal->record_action_fenced(started(e.seq), fence, error));
    REQUIRE(
        journal->finish_event_fenced(e.seq, EventState::done, "A", R"({"X":"1"})", fence, error));
  }
  CHECK(journal->pending_calls({}, 10).empty());
  CHECK(journal->release_call_lease("A", *first->epoch));
  CHECK(journal->call_vars("A") == R"({"X":"1"})");
}

TEST_CASE("cluster journal: fenced records and finishes are refused after a takeover",
          "[cluster][postgres]") {
  Backend backend(JournalBackend::postgres);
  auto journal = postgres_journal(backend);
  if (!journal) return;
  std::string error;
  auto event = journal->append_event_leased("T", "step", "{}", "node-1", 200ms, error);
  REQUIRE(event);
  REQUIRE(event->epoch);
  Fence old_fence{"call:T", *event->epoch};
  REQUIRE(journal->record_action_fenced(started(event->event.seq), old_fence, error));

  // Expired: claimable by another node, which takes it with a higher epoch.
  std::optional<std::int64_t> taken;
  for (int i = 0; i < 200 && !taken; ++i) {
    auto calls = journal->pending_calls({}, 10);
    if (calls.size() == 1 && calls[0].owner.empty())
      taken = journal->acquire_lease("call:T", "node-2", 10s);
    else
      std::this_thread::sleep_for(10ms);
  }
  REQUIRE(taken);
  CHECK(*taken > *event->epoch);

  ActionRecord late = started(event->event.seq);
  late.state = ActionState::succeeded;
  CHECK_FALSE(journal->record_action_fenced(late, old_fence, error));
  CHECK(error == kLeaseLost);
  journal->record_action_later_fenced(late, old_fence);
  error.clear();
  CHECK_FALSE(journal->finish_event_fenced(event->event.seq, EventState::done, "T", "{}", old_fence,
                                           error));
  CHECK(error == kLeaseLost);
  CHECK_FALSE(journal->release_call_lease("T", *event->epoch));

  // The new holder's records apply; the old holder's never showed.
  Fence fence{"call:T", *taken};
  ActionRecord unknown = started(event->event.seq);
  unknown.state = ActionState::unknown;
  REQUIRE(journal->record_action_fenced(unknown, fence, error));
  REQUIRE(
      journal->finish_event_fenced(event->event.seq, EventState::done, "T", "{}", fence, error));
  auto actions = journal->actions_of(event->event.seq);
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].state == ActionState::unknown);
}

TEST_CASE("cluster journal: an event stored for a call another node holds is hinted to others",
          "[cluster][postgres]") {
  Backend backend(JournalBackend::postgres);
  auto journal = postgres_journal(backend);
  if (!journal) return;
  std::string error;
  // LISTEN first (a short wait opens the listening connection).
  CHECK(journal->wait_for_stored_events("node-1", 10ms).empty());
  REQUIRE(journal->append_event_leased("H", "step", "{}", "node-1", 10s, error));
  // node-1 took it: no hint. node-2 stores the next one without the lease: a hint for node-1.
  REQUIRE(journal->append_event_leased("H", "step", "{}", "node-2", 10s, error));
  std::vector<std::string> hinted;
  for (int i = 0; i < 50 && hinted.empty(); ++i)
    hinted = journal->wait_for_stored_events("node-1", 100ms);
  CHECK(hinted == std::vector<std::string>{"H"});
  // A node ignores its own hints.
  REQUIRE(journal->append_event_leased("H", "step", "{}", "node-2", 10s, error));
  CHECK(journal->wait_for_stored_events("node-2", 300ms).empty());
}
