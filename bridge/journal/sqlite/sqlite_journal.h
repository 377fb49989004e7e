// The journal in one SQLite file (WAL): a writer connection owned by the group commit's writer
// thread and a reader connection shared by readers under a mutex (readers do not block the
// writer in WAL mode).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "bridge/journal/batched_journal.h"
#include "bridge/journal/group_commit.h"
#include "bridge/journal/journal.h"
#include "bridge/journal/sqlite/journal_file.h"
#include "bridge/journal/sqlite/statement.h"

namespace callbridge::bridge {

class SqliteJournal final : public BatchedJournal {
 public:
  // Opens or creates the journal file `options.path`, checks it (PRAGMA quick_check), migrates
  // its schema and continues event IDs after the mark beside it.
  static std::unique_ptr<SqliteJournal> open(const JournalOptions& options, std::string& error);
  // Checks a journal file, read only (PRAGMA integrity_check, the tables): what is wrong,
  // nothing when it is sound.
  static std::vector<std::string> check(const std::string& path);
  ~SqliteJournal() override;

  std::optional<StoredEvent> append_finished_event(
      const std::string& call_id, const std::string& event, const std::string& body,
      const std::string& defaults_json, const std::string& vars_json, std::string& error) override;
  bool finish_event(std::int64_t seq, EventState state, const std::string& call_id,
                    const std::string& vars_json, std::string& error) override;
  // One group-commit write each (unfenced only: a fence needs PostgreSQL).
  bool record_actions_fenced(const std::vector<ActionRecord>& records, const Fence& fence,
                             std::string& error) override;
  bool finish_event_with(const std::vector<ActionRecord>& records, std::int64_t seq,
                         EventState state, const std::string& call_id, const std::string& vars_json,
                         const Fence& fence, std::string& error) override;

  std::vector<StoredEvent> pending_events() override;
  std::vector<ActionRecord> actions_of(std::int64_t event_seq) override;
  std::optional<std::string> call_vars(const std::string& call_id) override;
  std::vector<StoredEvent> events_of_call(const std::string& call_id) override;
  std::vector<CallSummary> recent_calls(std::size_t limit, bool failures_only) override;
  std::vector<ActionRecord> dead_actions(std::size_t limit) override;
  std::optional<StoredEvent> event(std::int64_t seq) override;

  bool kv_erase(std::string_view ns, std::string_view key, std::string& error) override;
  std::optional<std::string> kv_get(std::string_view ns, std::string_view key) override;
  std::vector<std::pair<std::string, std::string>> kv_scan(std::string_view ns,
                                                           std::string_view prefix = {}) override;

  // Leases (leases.cc).
  std::optional<std::int64_t> acquire_lease(std::string_view name, std::string_view owner,
                                            std::chrono::milliseconds ttl) override;
  std::vector<std::string> renew_leases(std::string_view owner,
                                        const std::vector<std::string>& names,
                                        std::chrono::milliseconds ttl) override;
  void release_lease(std::string_view name, std::int64_t epoch) override;
  bool kv_put_fenced(std::string_view ns, std::string_view key, std::string_view value,
                     const Fence& fence, std::string& error) override;

  std::vector<CallRow> search_calls(const CallQuery& query) override;
  std::vector<FailureRow> failures(const std::string& rule, std::int64_t since_ms,
                                   std::int64_t before_rowid, std::size_t limit) override;
  std::vector<std::pair<std::string, std::int64_t>> action_counts(std::int64_t since_ms) override;
  std::vector<std::pair<std::int64_t, std::int64_t>> events_per_minute(
      std::int64_t since_ms) override;
  std::vector<std::int64_t> action_latencies(std::int64_t since_ms, std::size_t limit) override;

 private:
  SqliteJournal() = default;

  // The group commit's batch: one transaction, each write in its own savepoint.
  std::vector<std::string> commit_batch(const std::vector<GroupCommit::Apply*>& batch);
  bool insert_event(StoredEvent& stored, std::string& error) override;  // on the writer thread
  GroupCommit::Apply write_action(ActionRecord action) override;
  // Marks the event finished and stores the call's variables (on the writer thread).
  bool write_finish(std::int64_t seq, EventState state, const std::string& call_id,
                    const std::string& vars_json, std::string& error);
  GroupCommit::Apply write_kv(std::string ns, std::string key, std::string value) override;
  bool write_kv_if(const std::string& ns, const std::string& key, const std::string& value,
                   const std::optional<std::string>& expected, bool& stored,
                   std::string& error) override;
  bool prune_step(PruneStep step, PruneRun& run, std::string& error) override;

  template <class F>
  auto read(F&& f) {
    std::lock_guard lock(read_mutex_);
    return f(reader_);
  }

  JournalOptions options_;
  sqlite::Connection writer_;  // used on the group commit's writer thread only
  sqlite::EventIdMark ids_;
  bool mark_ids_ = false;  // a file journal: event IDs are covered by the mark
  std::mutex read_mutex_;
  sqlite::Connection reader_;
};

namespace sqlite {

// kFailureStates as an SQL list: ('http_error','failed','unknown','dead').
std::string failure_states_sql();

}  // namespace sqlite

}  // namespace callbridge::bridge
