#include "bridge/journal/journal.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "tests/fakes/subprocess.h"

using namespace callbridge::bridge;
using callbridge::testing::TempDir;

namespace {

std::unique_ptr<Journal> open_at(const std::string& path) {
  std::string error;
  auto j = Journal::open({path, false, 512}, error);
  INFO(error);
  REQUIRE(j);
  return j;
}

}  // namespace

TEST_CASE("appended events survive reopening and stay pending until finished", "[journal]") {
  TempDir dir;
  std::string path = dir.path() + "/j.db";
  std::string error;
  {
    auto j = open_at(path);
    auto e = j->append_event("C1", "inbound", R"({"event":"inbound","call_id":"C1"})", error);
    REQUIRE(e);
    CHECK(e->event_id == "ev-" + std::to_string(e->seq));
    REQUIRE(j->append_event("C1", "hangup", "{}", error));
  }
  auto j = open_at(path);
  auto pending = j->pending_events();
  REQUIRE(pending.size() == 2);
  CHECK(pending[0].event == "inbound");
  CHECK(pending[0].seq < pending[1].seq);

  ActionRecord a;
  a.event_seq = pending[0].seq;
  a.rule = "find";
  a.state = ActionState::started;
  REQUIRE(j->record_action(a, error));
  a.state = ActionState::succeeded;  // same key: replaced
  a.extracted = R"({"RESPONSE_ID":"7"})";
  REQUIRE(j->record_action(a, error));
  a.rule = "create";
  a.state = ActionState::dead;
  REQUIRE(j->record_action(a, error));
  auto actions = j->actions_of(pending[0].seq);
  REQUIRE(actions.size() == 2);
  CHECK(actions[0].rule == "find");
  CHECK(actions[0].state == ActionState::succeeded);
  CHECK(actions[1].rule == "create");

  REQUIRE(j->finish_event(pending[0].seq, EventState::done, "C1", R"({"RESPONSE_ID":"7"})", error));
  CHECK(j->pending_events().size() == 1);
  CHECK(j->call_vars("C1") == std::optional<std::string>(R"({"RESPONSE_ID":"7"})"));
  CHECK(j->dead_actions(10).size() == 1);
  auto failing = j->recent_calls(10, true);
  REQUIRE(failing.size() == 1);
  CHECK(failing[0].failed_actions == 1);
  CHECK(failing[0].pending_events == 1);
}

TEST_CASE("concurrent appends share commits", "[journal]") {
  TempDir dir;
  auto j = open_at(dir.path() + "/j.db");
  std::atomic<int> ok{0};
  std::mutex mutex;
  std::set<std::int64_t> seqs;
  std::vector<std::thread> threads;
  for (int t = 0; t < 32; ++t)
    threads.emplace_back([&, t] {
      std::string error;
      for (int i = 0; i < 100; ++i) {
        auto e = j->append_event("C" + std::to_string(t), "inbound", "{}", error);
        if (!e) continue;
        ++ok;
        std::lock_guard lock(mutex);
        seqs.insert(e->seq);
      }
    });
  for (auto& t : threads) t.join();
  CHECK(ok == 3200);
  CHECK(seqs.size() == 3200);
  CHECK(j->commits() < 3200);
}

TEST_CASE("prune removes finished calls older than the cutoff", "[journal]") {
  TempDir dir;
  auto j = open_at(dir.path() + "/j.db");
  std::string error;
  auto done = j->append_event("OLD", "inbound", "{}", error);
  REQUIRE(j->finish_event(done->seq, EventState::done, "OLD", "{}", error));
  j->append_event("PENDING", "inbound", "{}", error);
  CHECK(j->prune(std::chrono::system_clock::now() - std::chrono::hours(1)) == 0);
  CHECK(j->prune(std::chrono::system_clock::now() + std::chrono::hours(1)) == 1);
  CHECK(j->events_of_call("OLD").empty());
  CHECK_FALSE(j->call_vars("OLD"));
  CHECK(j->events_of_call("PENDING").size() == 1);
}

TEST_CASE("opening something that is not a journal fails cleanly", "[journal]") {
  TempDir dir;
  std::string error;
  CHECK_FALSE(Journal::open({dir.path(), true, 512}, error));
  CHECK_FALSE(error.empty());
  std::string garbage = dir.write("garbage.db", std::string(4096, 'g'));
  error.clear();
  CHECK_FALSE(Journal::open({garbage, true, 512}, error));
  CHECK_FALSE(error.empty());
}

TEST_CASE("queued writes are committed with the others and before the journal closes",
          "[journal]") {
  TempDir dir;
  std::string path = dir.path() + "/j.db";
  std::int64_t first_seq = 0;
  {
    auto j = open_at(path);
    std::string error;
    auto e = j->append_event("C1", "inbound", "{}", error);
    REQUIRE(e);
    first_seq = e->seq;
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
      threads.emplace_back([&, t] {
        std::string error;
        for (int i = 0; i < 50; ++i) {
          ActionRecord a;
          a.event_seq = first_seq;
          a.rule = "r" + std::to_string(t);
          a.attempt = i + 1;
          a.state = ActionState::skipped;
          j->record_action_later(a);  // returns at once
          j->kv_put_later("test", "k" + std::to_string(t), std::to_string(i));
          CHECK(j->append_event("C" + std::to_string(t), "inbound", "{}", error));
        }
      });
    for (auto& t : threads) t.join();
    // Destroyed here with queued writes possibly still waiting for their commit.
  }
  auto j = open_at(path);
  CHECK(j->actions_of(first_seq).size() == 400);
  for (int t = 0; t < 8; ++t) CHECK(j->kv_get("test", "k" + std::to_string(t)) == "49");
  CHECK(j->pending_events().size() == 401);
  CHECK(j->failed_later_writes() == 0);
}
