// The journal's behaviour through the interface, the same scenarios on every backend: SQLite in
// a scratch file and PostgreSQL on a server the test starts (tests/fakes/postgres.h). The
// PostgreSQL runs are skipped with a message when its binaries are absent or
// CALLBRIDGE_SKIP_POSTGRES=1 is set.
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bridge/journal/journal.h"
#include "tests/fakes/each_backend.h"
#include "tests/fakes/postgres.h"

using namespace callbridge::bridge;
using callbridge::testing::Backend;
using callbridge::testing::on_each_backend;
using callbridge::testing::PostgresServer;
using nlohmann::json;

namespace {

ActionRecord attempt(std::int64_t seq, const std::string& rule, int n, ActionState state) {
  ActionRecord a;
  a.event_seq = seq;
  a.rule = rule;
  a.attempt = n;
  a.state = state;
  a.started_at_ms = 1000 + n;
  a.finished_at_ms = state == ActionState::started ? 0 : 2000 + n;
  a.gate = "always";
  a.request = R"({"method":"POST"})";
  a.status = state == ActionState::succeeded ? 201 : 0;
  a.latency_us = 1234;
  a.extracted = R"({"RESPONSE_ID":"7"})";
  a.error = state == ActionState::failed ? "refused" : "";
  return a;
}

std::string body_of(int thread, int n) {
  return json{{"thread", thread}, {"n", n}}.dump();
}

}  // namespace

TEST_CASE("every backend: events, attempts and variables", "[journal][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    std::string error;
    auto first = journal->append_event("A", "ringing", R"({"event":"ringing"})", error);
    auto other = journal->append_event("B", "ringing", "{}", error);
    auto second = journal->append_event("A", "answered", "{}", error);
    REQUIRE(first);
    REQUIRE(other);
    REQUIRE(second);
    CHECK(first->seq < other->seq);
    CHECK(other->seq < second->seq);
    CHECK(first->event_id == event_id_of(first->seq));
    CHECK(first->state == EventState::pending);

    auto pending = journal->pending_events();
    REQUIRE(pending.size() == 3);
    CHECK(pending[0].seq == first->seq);
    CHECK(pending[0].body == R"({"event":"ringing"})");
    CHECK(pending[2].seq == second->seq);

    REQUIRE(journal->record_action(attempt(first->seq, "crm", 1, ActionState::started), error));
    REQUIRE(journal->record_action(attempt(first->seq, "crm", 1, ActionState::succeeded), error));
    REQUIRE(journal->record_action(attempt(first->seq, "crm", 2, ActionState::unknown), error));
    journal->record_action_later(attempt(first->seq, "note", 1, ActionState::skipped));
    REQUIRE(journal->finish_event(first->seq, EventState::done, "A", R"({"X":"1"})", error));

    auto actions = journal->actions_of(first->seq);
    REQUIRE(actions.size() == 3);
    CHECK(actions[0].rule == "crm");
    CHECK(actions[0].state == ActionState::succeeded);  // replaced, not added
    CHECK(actions[0].status == 201);
    CHECK(actions[0].latency_us == 1234);
    CHECK(actions[0].extracted == R"({"RESPONSE_ID":"7"})");
    CHECK(actions[1].state == ActionState::unknown);
    CHECK(actions[2].state == ActionState::skipped);

    CHECK(journal->call_vars("A") == std::optional<std::string>(R"({"X":"1"})"));
    CHECK_FALSE(journal->call_vars("B"));
    auto events = journal->events_of_call("A");
    REQUIRE(events.size() == 2);
    CHECK(events[0].state == EventState::done);
    CHECK(events[1].event == "answered");
    CHECK(journal->event(second->seq)->call_id == "A");
    CHECK_FALSE(journal->event(second->seq + 1000));

    auto calls = journal->recent_calls(10, false);
    REQUIRE(calls.size() == 2);
    CHECK(calls[0].call_id == "A");  // newest last event first
    CHECK(calls[0].events == 2);
    CHECK(calls[0].failed_actions == 1);
    CHECK(calls[0].pending_events == 1);
    auto failures = journal->recent_calls(10, true);
    REQUIRE(failures.size() == 1);
    CHECK(failures[0].call_id == "A");
    auto dead = journal->dead_actions(10);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].attempt == 2);

    CHECK(journal->pending_events().size() == 2);
    std::string reason;
    CHECK(journal->writable(reason));
    CHECK(journal->commits() > 0);
    CHECK(journal->failed_later_writes() == 0);
  });
}

TEST_CASE("every backend: a finished event merges the call's variables", "[journal][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    std::string error;
    auto e = journal->append_event("C", "ringing", "{}", error);
    REQUIRE(e);
    REQUIRE(
        journal->finish_event(e->seq, EventState::done, "C", R"({"B":"stored","D":"x"})", error));
    auto finished =
        journal->append_finished_event("C", "hangup", "{}", R"({"A":"default","B":"default"})",
                                       R"({"C":"event","D":null})", error);
    REQUIRE(finished);
    CHECK(finished->state == EventState::done);
    auto vars = json::parse(journal->call_vars("C").value_or("null"));
    CHECK(vars == json{{"A", "default"}, {"B", "stored"}, {"C", "event"}});
    // A call without stored variables: the defaults, then the event's.
    REQUIRE(
        journal->append_finished_event("N", "hangup", "{}", R"({"A":"1"})", R"({"B":"2"})", error));
    CHECK(json::parse(journal->call_vars("N").value_or("null")) == json{{"A", "1"}, {"B", "2"}});
    CHECK(journal->pending_events().empty());
    // Malformed variables fail the write alone: no event is stored.
    CHECK_FALSE(journal->append_finished_event("C", "hangup", "{}", "{", "{}", error));
    CHECK_FALSE(error.empty());
    CHECK(journal->events_of_call("C").size() == 2);
  });
}

TEST_CASE("every backend: the key-value store", "[journal][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    std::string error;
    for (const char* key : {"a/2", "b", "a/1", "a0", "a/10", "a"})
      REQUIRE(journal->kv_put("ns", key, std::string("v-") + key, error));
    REQUIRE(journal->kv_put("other", "a/1", "elsewhere", error));
    CHECK(journal->kv_get("ns", "a/1") == std::optional<std::string>("v-a/1"));
    CHECK_FALSE(journal->kv_get("ns", "missing"));
    REQUIRE(journal->kv_put("ns", "a/1", "changed", error));
    CHECK(journal->kv_get("ns", "a/1") == std::optional<std::string>("changed"));

    auto scan = journal->kv_scan("ns", "a/");
    REQUIRE(scan.size() == 3);
    CHECK(scan[0].first == "a/1");  // bytewise order
    CHECK(scan[1].first == "a/10");
    CHECK(scan[2].first == "a/2");
    auto all = journal->kv_scan("ns");
    std::vector<std::string> keys;
    for (const auto& [k, v] : all) keys.push_back(k);
    CHECK(keys == std::vector<std::string>{"a", "a/1", "a/10", "a/2", "a0", "b"});
    // Prefixes ending in bytes beyond ASCII find their keys too.
    REQUIRE(journal->kv_put("ns", "\xE6\x9D\xB1\xE4\xBA\xAC/1", "tokyo", error));
    REQUIRE(journal->kv_put("ns", "\x7F/1", "del", error));
    CHECK(journal->kv_scan("ns", "\xE6\x9D\xB1\xE4\xBA\xAC").size() == 1);
    CHECK(journal->kv_scan("ns", "\x7F").size() == 1);

    REQUIRE(journal->kv_erase("ns", "a0", error));
    CHECK_FALSE(journal->kv_get("ns", "a0"));
    journal->kv_put_later("later", "k", "queued");
    REQUIRE(journal->kv_put("ns", "after", "1", error));  // committed with or after the queued
    CHECK(journal->kv_get("later", "k") == std::optional<std::string>("queued"));
  });
}

TEST_CASE("every backend: prune removes old calls with their event-scoped keys",
          "[journal][postgres]") {
  on_each_backend([](Backend& backend) {
    std::vector<EventScopedKeys> scoped{
        {"notes", [](std::string_view id) { return std::string(id) + "/"; }}};
    auto journal = backend.open(scoped);
    std::string error;
    auto old_event = journal->append_event("old", "ringing", "{}", error);
    auto open_event = journal->append_event("open", "ringing", "{}", error);
    REQUIRE(old_event);
    REQUIRE(open_event);
    REQUIRE(
        journal->record_action(attempt(old_event->seq, "crm", 1, ActionState::succeeded), error));
    REQUIRE(journal->finish_event(old_event->seq, EventState::done, "old", "{}", error));
    REQUIRE(journal->kv_put("notes", old_event->event_id + "/id", "7", error));
    REQUIRE(journal->kv_put("notes", open_event->event_id + "/id", "8", error));
    REQUIRE(journal->kv_put("oauth", old_event->event_id + "/id", "kept", error));

    // Nothing is older than an hour ago.
    CHECK(journal->prune(std::chrono::system_clock::now() - std::chrono::hours(1)) == 0);
    CHECK(journal->prune(std::chrono::system_clock::now() + std::chrono::hours(1)) == 1);
    CHECK(journal->events_of_call("old").empty());
    CHECK(journal->actions_of(old_event->seq).empty());
    CHECK_FALSE(journal->call_vars("old"));
    CHECK_FALSE(journal->kv_get("notes", old_event->event_id + "/id"));
    CHECK(journal->kv_get("notes", open_event->event_id + "/id"));  // a pending call stays
    CHECK(journal->kv_get("oauth", old_event->event_id + "/id"));   // not event-scoped
    CHECK(journal->events_of_call("open").size() == 1);

    // A pruned call that comes back starts again; event IDs are never given twice.
    auto again = journal->append_event("old", "ringing", "{}", error);
    REQUIRE(again);
    CHECK(again->seq > open_event->seq);
    CHECK(journal->events_of_call("old").size() == 1);
  });
}

TEST_CASE("every backend: per-call order under concurrent appends from 8 threads",
          "[journal][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    constexpr int kThreads = 8, kPerThread = 40, kCalls = 4;
    std::vector<std::thread> threads;
    std::vector<std::vector<std::int64_t>> acknowledged(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int n = 0; n < kPerThread; ++n) {
          std::string error;
          auto e = journal->append_event("call-" + std::to_string((t + n) % kCalls), "step",
                                         body_of(t, n), error);
          acknowledged[t].push_back(e ? e->seq : -1);
        }
      });
    }
    for (auto& th : threads) th.join();
    std::set<std::int64_t> seqs;
    for (int t = 0; t < kThreads; ++t)
      for (std::int64_t seq : acknowledged[t]) {
        CHECK(seq > 0);
        seqs.insert(seq);
      }
    CHECK(seqs.size() == kThreads * kPerThread);  // each acknowledged once, none given twice

    std::size_t total = 0;
    for (int c = 0; c < kCalls; ++c) {
      auto events = journal->events_of_call("call-" + std::to_string(c));
      total += events.size();
      std::map<int, int> last_of_thread;
      for (std::size_t i = 0; i < events.size(); ++i) {
        if (i > 0) CHECK(events[i - 1].seq < events[i].seq);
        auto body = json::parse(events[i].body);
        int t = body["thread"], n = body["n"];
        // A thread's appends to one call keep the order they were acknowledged in.
        if (last_of_thread.count(t)) CHECK(last_of_thread[t] < n);
        last_of_thread[t] = n;
      }
    }
    CHECK(total == kThreads * kPerThread);
    auto pending = journal->pending_events();
    REQUIRE(pending.size() == kThreads * kPerThread);
    for (std::size_t i = 1; i < pending.size(); ++i) CHECK(pending[i - 1].seq < pending[i].seq);
    CHECK(journal->commits() <= static_cast<std::uint64_t>(kThreads * kPerThread));
  });
}

TEST_CASE("every backend: reopening keeps everything and continues event IDs",
          "[journal][postgres]") {
  on_each_backend([](Backend& backend) {
    std::int64_t last = 0;
    {
      auto journal = backend.open();
      std::string error;
      auto e = journal->append_event("R", "ringing", "{}", error);
      REQUIRE(e);
      REQUIRE(journal->record_action(attempt(e->seq, "crm", 1, ActionState::started), error));
      REQUIRE(journal->kv_put("oauth", "token", "abc", error));
      journal->kv_put_later("dedupe", "d-1", "1");  // written before the journal closes
      auto done = journal->append_finished_event("R", "hangup", "{}", "{}", R"({"V":"1"})", error);
      REQUIRE(done);
      last = done->seq;
    }
    auto journal = backend.open();
    auto pending = journal->pending_events();
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].call_id == "R");
    CHECK(journal->actions_of(pending[0].seq).size() == 1);
    CHECK(journal->events_of_call("R").size() == 2);
    CHECK(journal->call_vars("R") == std::optional<std::string>(R"({"V":"1"})"));
    CHECK(journal->kv_get("oauth", "token") == std::optional<std::string>("abc"));
    CHECK(journal->kv_get("dedupe", "d-1") == std::optional<std::string>("1"));
    std::string error;
    auto next = journal->append_event("R", "step", "{}", error);
    REQUIRE(next);
    CHECK(next->seq > last);
    auto events = journal->events_of_call("R");
    REQUIRE(events.size() == 3);
    CHECK(events.back().seq == next->seq);
  });
}

TEST_CASE("postgres: writes fail while the database is down and work again when it is back",
          "[journal][postgres]") {
  std::string skipped;
  PostgresServer* server = PostgresServer::shared(skipped);
  if (!server) {
    WARN(skipped);
    return;
  }
  Backend backend(JournalBackend::postgres);
  REQUIRE(backend.prepare(skipped));
  auto journal = backend.open();
  std::string error, reason;
  auto before = journal->append_event("D", "ringing", "{}", error);
  REQUIRE(before);

  REQUIRE(server->stop(error));
  CHECK_FALSE(journal->append_event("D", "lost", "{}", error));
  CHECK_FALSE(error.empty());
  CHECK_FALSE(journal->writable(reason));
  CHECK_FALSE(reason.empty());
  INFO(reason);
  REQUIRE(server->start_again(error));

  // The probe the readiness check queues, then the next write, connect again.
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    back = journal->writable(reason);
    if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(back);
  auto after = journal->append_event("D", "answered", "{}", error);
  INFO(error);
  REQUIRE(after);
  CHECK(after->seq > before->seq);
  auto events = journal->events_of_call("D");  // the reader connects again too
  REQUIRE(events.size() == 2);
  CHECK(events[0].event == "ringing");
  CHECK(events[1].event == "answered");
  CHECK(journal->pending_events().size() == 2);
}
