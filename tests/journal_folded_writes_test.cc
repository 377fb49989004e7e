// Several attempt records in one write (Journal::record_actions_fenced) and an event's last
// outcomes written with its finish (Journal::finish_event_with): in order, one transaction each,
// on every backend; fenced on PostgreSQL, where a lost lease writes nothing.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "bridge/journal/journal.h"
#include "tests/fakes/each_backend.h"

using namespace callbridge::bridge;
using callbridge::testing::Backend;
using callbridge::testing::on_each_backend;
using namespace std::chrono_literals;

namespace {

ActionRecord record_of(std::int64_t seq, const std::string& rule, ActionState state) {
  ActionRecord a;
  a.event_seq = seq;
  a.rule = rule;
  a.state = state;
  a.started_at_ms = 1000;
  a.finished_at_ms = state == ActionState::started ? 0 : 2000;
  a.request = R"({"method":"POST"})";
  a.status = state == ActionState::succeeded ? 201 : 0;
  a.extracted = state == ActionState::succeeded ? R"({"RESPONSE_ID":"7"})" : "";
  return a;
}

std::vector<std::string> rules_and_states(const std::vector<ActionRecord>& actions) {
  std::vector<std::string> out;
  for (const auto& a : actions) out.push_back(a.rule + ":" + std::string(to_string(a.state)));
  return out;
}

}  // namespace

TEST_CASE("every backend: records written together in order in one commit", "[journal][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    std::string error;
    auto event = journal->append_event("F", "step", "{}", error);
    REQUIRE(event);
    REQUIRE(journal->record_action(record_of(event->seq, "first", ActionState::started), error));

    // The first rule's outcome with the second rule's started record.
    auto before = journal->commits();
    REQUIRE(journal->record_actions_fenced({record_of(event->seq, "first", ActionState::succeeded),
                                            record_of(event->seq, "second", ActionState::started)},
                                           Fence{}, error));
    CHECK(journal->commits() == before + 1);
    CHECK(rules_and_states(journal->actions_of(event->seq)) ==
          std::vector<std::string>{"first:succeeded", "second:started"});

    // The second rule's outcome and a skipped gate with the finish.
    before = journal->commits();
    REQUIRE(journal->finish_event_with({record_of(event->seq, "second", ActionState::http_error),
                                        record_of(event->seq, "third", ActionState::skipped)},
                                       event->seq, EventState::done, "F", R"({"X":"1"})", Fence{},
                                       error));
    CHECK(journal->commits() == before + 1);
    CHECK(rules_and_states(journal->actions_of(event->seq)) ==
          std::vector<std::string>{"first:succeeded", "second:http_error", "third:skipped"});
    CHECK(journal->pending_events().empty());
    auto stored = journal->event(event->seq);
    REQUIRE(stored);
    CHECK(stored->state == EventState::done);
    CHECK(journal->call_vars("F") == R"({"X":"1"})");

    // Nothing to fold: the finish alone, still one commit.
    auto other = journal->append_event("G", "step", "{}", error);
    REQUIRE(other);
    before = journal->commits();
    REQUIRE(
        journal->finish_event_with({}, other->seq, EventState::done, "G", "{}", Fence{}, error));
    CHECK(journal->commits() == before + 1);
    CHECK(journal->pending_events().empty());

    // What was written together survives a reopen.
    journal.reset();
    journal = backend.open();
    CHECK(rules_and_states(journal->actions_of(event->seq)) ==
          std::vector<std::string>{"first:succeeded", "second:http_error", "third:skipped"});
  });
}

TEST_CASE("every backend: concurrent folded writes share group commits", "[journal][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    constexpr int kThreads = 8;
    std::vector<std::int64_t> seqs;
    std::string error;
    for (int i = 0; i < kThreads; ++i) {
      auto e = journal->append_event("C" + std::to_string(i), "step", "{}", error);
      REQUIRE(e);
      seqs.push_back(e->seq);
    }
    std::vector<std::thread> threads;
    std::vector<int> ok(kThreads, 0);
    for (int i = 0; i < kThreads; ++i)
      threads.emplace_back([&, i] {
        std::string e;
        ok[i] =
            journal->record_actions_fenced({record_of(seqs[i], "crm", ActionState::started)},
                                           Fence{}, e) &&
            journal->finish_event_with({record_of(seqs[i], "crm", ActionState::succeeded)}, seqs[i],
                                       EventState::done, "C" + std::to_string(i), "{}", Fence{}, e);
      });
    for (auto& t : threads) t.join();
    for (int i = 0; i < kThreads; ++i) {
      CHECK(ok[i] == 1);
      CHECK(rules_and_states(journal->actions_of(seqs[i])) ==
            std::vector<std::string>{"crm:succeeded"});
    }
    CHECK(journal->pending_events().empty());
  });
}

TEST_CASE("postgres: folded writes are fenced and a lost lease writes none of them",
          "[journal][cluster][postgres]") {
  Backend backend(JournalBackend::postgres);
  std::string skipped;
  if (!backend.prepare(skipped)) {
    WARN(skipped);
    return;
  }
  auto journal = backend.open();
  std::string error;
  auto event = journal->append_event_leased("L", "step", "{}", "node-1", 300ms, error);
  REQUIRE(event);
  REQUIRE(event->epoch);
  const std::int64_t seq = event->event.seq;
  Fence held{"call:L", *event->epoch};
  REQUIRE(
      journal->record_actions_fenced({record_of(seq, "first", ActionState::started)}, held, error));
  REQUIRE(journal->record_actions_fenced({record_of(seq, "first", ActionState::succeeded),
                                          record_of(seq, "second", ActionState::started)},
                                         held, error));
  CHECK(rules_and_states(journal->actions_of(seq)) ==
        std::vector<std::string>{"first:succeeded", "second:started"});

  // The lease expires and another node takes the call.
  std::optional<std::int64_t> taken;
  for (int i = 0; i < 300 && !taken; ++i) {
    auto calls = journal->pending_calls({}, 10);
    if (calls.size() == 1 && calls[0].owner.empty())
      taken = journal->acquire_lease("call:L", "node-2", 10s);
    else
      std::this_thread::sleep_for(10ms);
  }
  REQUIRE(taken);

  // The old holder's folded writes: refused whole.
  error.clear();
  CHECK_FALSE(journal->record_actions_fenced({record_of(seq, "second", ActionState::succeeded),
                                              record_of(seq, "third", ActionState::started)},
                                             held, error));
  CHECK(error == kLeaseLost);
  error.clear();
  CHECK_FALSE(journal->finish_event_with({record_of(seq, "second", ActionState::succeeded)}, seq,
                                         EventState::done, "L", R"({"X":"old"})", held, error));
  CHECK(error == kLeaseLost);
  CHECK(rules_and_states(journal->actions_of(seq)) ==
        std::vector<std::string>{"first:succeeded", "second:started"});
  REQUIRE(journal->event(seq));
  CHECK(journal->event(seq)->state == EventState::pending);
  CHECK_FALSE(journal->call_vars("L"));

  // The new holder's apply.
  Fence fence{"call:L", *taken};
  REQUIRE(journal->finish_event_with({record_of(seq, "second", ActionState::unknown)}, seq,
                                     EventState::done, "L", R"({"X":"new"})", fence, error));
  CHECK(rules_and_states(journal->actions_of(seq)) ==
        std::vector<std::string>{"first:succeeded", "second:unknown"});
  CHECK(journal->event(seq)->state == EventState::done);
  CHECK(journal->call_vars("L") == R"({"X":"new"})");
}
