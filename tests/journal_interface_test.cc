// The journal's parts on their own: the failure states, the group commit with a fake batch
// sink, prune's steps, and the factory.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "bridge/intake.h"
#include "bridge/journal/group_commit.h"
#include "bridge/journal/journal.h"
#include "bridge/journal/sqlite/sqlite_journal.h"
#include "rules/host.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::bridge;
using callbridge::testing::TempDir;

namespace {

// A batch sink that records each batch's writes (by what they append to `log`), fails the
// writes that say so, and can hold the writer inside a commit until released.
class FakeSink {
 public:
  std::vector<std::string> commit(const std::vector<GroupCommit::Apply*>& batch) {
    std::unique_lock lock(mutex_);
    ++entered_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !hold_; });
    std::vector<std::string> results;
    std::vector<std::string> names;
    for (GroupCommit::Apply* apply : batch) {
      std::string error;
      std::string name;
      bool ok = (*apply)(name);  // the fake's writes report their name through `error`
      names.push_back(name);
      results.push_back(ok ? std::string() : "refused " + name);
    }
    batches_.push_back(names);
    changed_.notify_all();
    return results;
  }
  void hold() {
    std::lock_guard lock(mutex_);
    hold_ = true;
  }
  void release() {
    std::lock_guard lock(mutex_);
    hold_ = false;
    changed_.notify_all();
  }
  // Waits until the writer has entered `n` commits.
  bool wait_entered(int n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return entered_ >= n; });
  }
  std::vector<std::vector<std::string>> batches() {
    std::lock_guard lock(mutex_);
    return batches_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool hold_ = false;
  int entered_ = 0;
  std::vector<std::vector<std::string>> batches_;
};

GroupCommit::CommitBatch into(FakeSink& sink) {
  return [&sink](const std::vector<GroupCommit::Apply*>& batch) { return sink.commit(batch); };
}

// A write named `name`: fails when `ok` is false.
GroupCommit::Apply named(std::string name, bool ok = true) {
  return [name = std::move(name), ok](std::string& out) {
    out = name;
    return ok;
  };
}

bool wait_queued(const GroupCommit& group, std::size_t n) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (group.queued() < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

std::unique_ptr<SqliteJournal> open_sqlite(const std::string& path) {
  std::string error;
  JournalOptions options(path, false, 512);
  options.event_scoped = JournalStore::event_scoped_keys();
  auto j = SqliteJournal::open(options, error);
  INFO(error);
  REQUIRE(j);
  return j;
}

}  // namespace

TEST_CASE("is_failure is the one list of failed action states", "[journal-interface]") {
  std::vector<ActionState> failures;
  for (ActionState s : {ActionState::started, ActionState::retrying, ActionState::succeeded,
                        ActionState::http_error, ActionState::failed, ActionState::skipped,
                        ActionState::unknown, ActionState::dead, ActionState::replayed}) {
    CHECK(action_state_from(to_string(s)) == s);
    if (is_failure(s)) failures.push_back(s);
  }
  CHECK(failures == std::vector<ActionState>{ActionState::http_error, ActionState::failed,
                                             ActionState::unknown, ActionState::dead});
  CHECK(sqlite::failure_states_sql() == "('http_error','failed','unknown','dead')");
  CHECK_FALSE(action_state_from("succeded"));
  CHECK(event_state_from("done") == EventState::done);
  CHECK_FALSE(event_state_from("finished"));
}

TEST_CASE("group commit: writes queued during a commit share the next one", "[journal-interface]") {
  FakeSink sink;
  std::vector<std::thread> callers;
  std::vector<std::string> errors(6);
  {
    GroupCommit group(512, into(sink));
    sink.hold();
    std::string error;
    std::thread first([&] { CHECK(group.submit(named("first"), error)); });
    REQUIRE(sink.wait_entered(1));
    // While the first transaction commits, five callers queue; one of them is refused.
    for (int i = 0; i < 5; ++i)
      callers.emplace_back([&, i] {
        bool ok = group.submit(named("w" + std::to_string(i), i != 3), errors[i]);
        CHECK(ok == (i != 3));
      });
    group.submit_later(named("later"));
    REQUIRE(wait_queued(group, 6));
    sink.release();
    first.join();
    for (auto& t : callers) t.join();
    CHECK(error.empty());
  }
  auto batches = sink.batches();
  REQUIRE(batches.size() == 2);
  CHECK(batches[0] == std::vector<std::string>{"first"});
  CHECK(batches[1].size() == 6);
  // Each caller hears its own write's outcome, not its neighbours'.
  CHECK(errors[3] == "refused w3");
  for (int i : {0, 1, 2, 4}) CHECK(errors[i].empty());
}

TEST_CASE("group commit: batches hold at most max_batch writes, in queue order",
          "[journal-interface]") {
  FakeSink sink;
  {
    GroupCommit group(3, into(sink));
    sink.hold();
    group.submit_later(named("a"));
    REQUIRE(sink.wait_entered(1));
    for (int i = 0; i < 7; ++i) group.submit_later(named(std::to_string(i)));
    REQUIRE(wait_queued(group, 7));
    sink.release();
  }  // the destructor writes what is queued
  auto batches = sink.batches();
  REQUIRE(batches.size() == 4);
  CHECK(batches[0] == std::vector<std::string>{"a"});
  CHECK(batches[1] == std::vector<std::string>{"0", "1", "2"});
  CHECK(batches[2] == std::vector<std::string>{"3", "4", "5"});
  CHECK(batches[3] == std::vector<std::string>{"6"});
}

TEST_CASE("group commit: queued writes that fail are counted", "[journal-interface]") {
  FakeSink sink;
  GroupCommit group(512, into(sink));
  group.submit_later(named("bad", false));
  std::string error;
  REQUIRE(group.submit(named("good"), error));  // committed after the queued write
  CHECK(group.failed_later() == 1);
  CHECK(group.queued() == 0);
}

TEST_CASE("prune runs its steps in the documented order", "[journal-interface]") {
  std::vector<std::string> names;
  for (PruneStep step : kPruneSteps) names.emplace_back(to_string(step));
  CHECK(names == std::vector<std::string>{"select_calls", "delete_actions", "delete_event_keys",
                                          "delete_events", "delete_calls"});
}

TEST_CASE("prune's steps delete an old call's rows and nothing else", "[journal-interface]") {
  TempDir dir;
  auto j = open_sqlite(dir.path() + "/j.db");
  std::string error;
  namespace rules = callbridge::rules;
  // An old finished call with an action and notes, a pending call, and the notes of both.
  auto old_event = j->append_event("OLD", "inbound", "{}", error);
  REQUIRE(old_event);
  ActionRecord a;
  a.event_seq = old_event->seq;
  a.rule = "r";
  a.state = ActionState::succeeded;
  REQUIRE(j->record_action(a, error));
  REQUIRE(j->finish_event(old_event->seq, EventState::done, "OLD", "{\"A\":\"1\"}", error));
  auto pending = j->append_event("PENDING", "inbound", "{}", error);
  REQUIRE(pending);
  REQUIRE(
      j->kv_put(rules::kEventNotes, rules::event_note_key(old_event->event_id, "x"), "1", error));
  REQUIRE(j->kv_put(rules::kEventNotes, rules::event_note_key(pending->event_id, "x"), "2", error));
  // The same key in a namespace that is not the event's stays.
  REQUIRE(j->kv_put("other", rules::event_note_key(old_event->event_id, "x"), "3", error));
  auto later = std::chrono::system_clock::now() + std::chrono::hours(1);

  // The first two steps alone: the attempts go, the events stay.
  CHECK(j->prune_steps(later, std::span(kPruneSteps).first(2)) == 1);
  CHECK(j->actions_of(old_event->seq).empty());
  CHECK(j->events_of_call("OLD").size() == 1);
  CHECK(j->kv_scan(rules::kEventNotes).size() == 2);

  CHECK(j->prune(later) == 1);
  CHECK(j->events_of_call("OLD").empty());
  CHECK_FALSE(j->call_vars("OLD"));
  CHECK(j->kv_scan(rules::kEventNotes) ==
        std::vector<std::pair<std::string, std::string>>{
            {rules::event_note_key(pending->event_id, "x"), "2"}});
  CHECK(j->kv_get("other", rules::event_note_key(old_event->event_id, "x")) == "3");
  CHECK(j->events_of_call("PENDING").size() == 1);
}

TEST_CASE("the factory opens the configured backend", "[journal-interface]") {
  TempDir dir;
  std::string error;
  auto j = Journal::open({dir.path() + "/j.db", false, 16}, error);
  REQUIRE(j);
  CHECK(dynamic_cast<SqliteJournal*>(j.get()) != nullptr);
  CHECK(SqliteJournal::check(dir.path() + "/j.db").empty());
}
