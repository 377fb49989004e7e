// The journal in a PostgreSQL database: a writer connection owned by the group commit's writer
// thread (one transaction per batch) and a reader connection shared by readers under a mutex.
// Either connects again by itself after the server comes back.
//
// A batch is first written the quick way: the statements of every write sent at once (libpq's
// pipeline mode) when each write is a Pipelined one, else one write after the other, with no
// savepoints. Should one write fail, the transaction is rolled back and the batch written again
// the careful way, each write in a savepoint, so that the failing write fails alone.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "bridge/journal/batched_journal.h"
#include "bridge/journal/group_commit.h"
#include "bridge/journal/journal.h"
#include "bridge/journal/postgres/connection.h"

namespace callbridge::bridge {

class PostgresJournal final : public BatchedJournal {
 public:
  // Connects to `options.postgres` and creates or migrates the schema.
  static std::unique_ptr<PostgresJournal> open(const JournalOptions& options, std::string& error);
  ~PostgresJournal() override;

  std::optional<StoredEvent> append_finished_event(
      const std::string& call_id, const std::string& event, const std::string& body,
      const std::string& defaults_json, const std::string& vars_json, std::string& error) override;
  bool finish_event(std::int64_t seq, EventState state, const std::string& call_id,
                    const std::string& vars_json, std::string& error) override;

  std::vector<StoredEvent> pending_events() override;
  std::vector<ActionRecord> actions_of(std::int64_t event_seq) override;
  bool read_actions_of(std::int64_t event_seq, std::vector<ActionRecord>& out,
                       std::string& error) override;
  bool read_call_vars(const std::string& call_id, std::optional<std::string>& vars,
                      std::string& error) override;
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

  // Cluster mode (cluster.cc).
  std::optional<LeasedEvent> append_event_leased(const std::string& call_id,
                                                 const std::string& event, const std::string& body,
                                                 std::string_view owner,
                                                 std::chrono::milliseconds ttl,
                                                 std::string& error) override;
  std::optional<LeasedEvent> append_idle_event(const std::string& call_id, const std::string& event,
                                               const std::string& body,
                                               const std::string& defaults_json,
                                               const std::string& vars_json, std::string_view owner,
                                               std::chrono::milliseconds ttl,
                                               std::string& error) override;
  std::vector<StoredEvent> pending_events_of(const std::string& call_id) override;
  std::vector<PendingCall> pending_calls(const std::vector<std::string>& only,
                                         std::size_t limit) override;
  bool record_action_fenced(const ActionRecord& action, const Fence& fence,
                            std::string& error) override;
  void record_action_later_fenced(ActionRecord action, Fence fence) override;
  bool finish_event_fenced(std::int64_t seq, EventState state, const std::string& call_id,
                           const std::string& vars_json, const Fence& fence,
                           std::string& error) override;
  bool record_actions_fenced(const std::vector<ActionRecord>& records, const Fence& fence,
                             std::string& error) override;
  bool finish_event_with(const std::vector<ActionRecord>& records, std::int64_t seq,
                         EventState state, const std::string& call_id, const std::string& vars_json,
                         const Fence& fence, std::string& error) override;
  bool release_call_lease(const std::string& call_id, std::int64_t epoch) override;
  void release_call_lease_later(const std::string& call_id, std::int64_t epoch) override;
  std::vector<std::string> wait_for_stored_events(std::string_view owner,
                                                  std::chrono::milliseconds timeout) override;

  // The console's queries (console_queries.cc).
  std::vector<CallRow> search_calls(const CallQuery& query) override;
  std::vector<FailureRow> failures(const std::string& rule, std::int64_t since_ms,
                                   std::int64_t before_rowid, std::size_t limit) override;
  std::vector<std::pair<std::string, std::int64_t>> action_counts(std::int64_t since_ms) override;
  std::vector<std::pair<std::int64_t, std::int64_t>> events_per_minute(
      std::int64_t since_ms) override;
  std::vector<std::int64_t> action_latencies(std::int64_t since_ms, std::size_t limit) override;

 private:
  PostgresJournal() = default;

  // A write made of statements whose parameters are known before any of them runs, so that a
  // batch of such writes is sent at once. `check` reads a statement's result (none: it must be
  // ok): false with `error` fails the write; it may add statements to `then`, run after this
  // round of the batch (a write computed from what was read). `sure`: its check adds nothing,
  // notes no NOTIFY and fails only when the server refused the statement, so COMMIT may be sent
  // right behind it. Called as a GroupCommit::Apply a write runs its statements one by one.
  struct Statement {
    std::string_view sql;  // static text
    pg::Params params;
    std::function<bool(const pg::Result&, std::string& error, std::vector<Statement>& then)> check;
    bool sure = false;
  };
  struct Pipelined {
    PostgresJournal* journal;
    std::vector<Statement> statements;
    bool operator()(std::string& error);
  };
  GroupCommit::Apply pipelined(std::vector<Statement> statements) {
    return Pipelined{this, std::move(statements)};
  }
  // The statement's result as a write's: ok, or false with `error`.
  static bool result_ok(const pg::Result& r, std::string& error);

  enum class QuickOutcome { committed, write_failed, unknown };
  std::vector<std::string> commit_batch(const std::vector<GroupCommit::Apply*>& batch);
  QuickOutcome commit_quick(const std::vector<GroupCommit::Apply*>& batch, std::string& error);
  QuickOutcome commit_pipelined(const std::vector<Pipelined*>& batch, std::string& error);
  std::vector<std::string> commit_careful(const std::vector<GroupCommit::Apply*>& batch);
  void roll_back();
  bool insert_event(StoredEvent& stored, std::string& error) override;  // on the writer thread
  GroupCommit::Apply write_action(ActionRecord action) override;
  GroupCommit::Apply write_kv(std::string ns, std::string key, std::string value) override;
  bool write_kv_if(const std::string& ns, const std::string& key, const std::string& value,
                   const std::optional<std::string>& expected, bool& stored,
                   std::string& error) override;
  bool prune_step(PruneStep step, PruneRun& run, std::string& error) override;
  // Leases on the writer thread (leases.cc).
  bool write_acquire(std::string_view name, std::string_view owner, std::chrono::milliseconds ttl,
                     std::optional<std::int64_t>& epoch, std::string& error);
  static std::string fence_check(int first_param);
  // Cluster mode on the writer thread (cluster.cc): one NOTIFY per batch for the events stored
  // for calls another node holds.
  GroupCommit::Apply write_action_fenced(ActionRecord action, Fence fence);
  Statement action_statement(const ActionRecord& action, const Fence& fence);
  Statement finish_statement(std::int64_t seq, EventState state, const std::string& call_id,
                             const std::string& vars_json, const Fence& fence);
  GroupCommit::Apply write_finish(std::int64_t seq, EventState state, const std::string& call_id,
                                  const std::string& vars_json, const Fence& fence);
  GroupCommit::Apply write_release_call(std::string call_id, std::int64_t epoch,
                                        std::shared_ptr<bool> released);
  void note_for_others(std::string_view owner, std::string_view call_id);
  void send_notify();
  bool take_notify(std::string& channel, std::string& payload);
  void forget_notify();

  // Runs `f` on the reader connection (connected again when needed); `fallback` when the
  // database cannot be reached.
  template <class F, class R>
  R read(F&& f, R fallback) {
    std::lock_guard lock(read_mutex_);
    std::string error;
    if (!reader_.ensure(error)) return fallback;
    return f(reader_);
  }

  JournalOptions options_;
  pg::Connection writer_;  // used on the group commit's writer thread only
  std::mutex read_mutex_;
  pg::Connection reader_;
  std::string notify_payload_;  // this batch's NOTIFY (writer thread)
  bool notify_overflow_ = false;
  std::mutex listen_mutex_;
  pg::Connection listener_;  // LISTENs, opened on first use (cluster mode)
};

namespace pg {

// kFailureStates as an SQL list: ('http_error','failed','unknown','dead').
std::string failure_states_sql();
// RFC 7386 merge patches, as SQLite's json_patch: `patches` applied in order to an empty
// object. nullopt with `error` when one is not JSON.
std::optional<std::string> merged(std::initializer_list<const std::string*> patches,
                                  std::string& error);

}  // namespace pg

}  // namespace callbridge::bridge
