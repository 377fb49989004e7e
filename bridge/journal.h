// The embedded journal (SQLite, WAL): every accepted event, every rule attempt, each call's
// variables. Writes from all threads are group-committed: a caller blocks until its write is
// durable, and concurrent callers share one transaction and one fsync.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callbridge::bridge {

struct JournalOptions {
  std::string path = "callbridge.db";
  bool fsync_each_commit = true;  // synchronous=FULL; false: NORMAL (survives a process crash only)
  std::size_t max_batch = 512;    // writes per transaction at most
};

enum class EventState { pending, done, dead };
// started: sent or about to be sent, no outcome yet. unknown: interrupted after a
// non-idempotent request may have reached the server. retrying: failed, another attempt is
// due. dead: retries exhausted (dead letter).
enum class ActionState {
  started,
  retrying,
  succeeded,
  http_error,
  failed,
  skipped,
  unknown,
  dead,
  replayed
};

std::string_view to_string(EventState state);
std::string_view to_string(ActionState state);
std::optional<ActionState> action_state_from(std::string_view text);

struct StoredEvent {
  std::int64_t seq = 0;  // arrival order, global
  std::string event_id;  // "ev-<seq>" style public ID
  std::string call_id;
  std::string event;                // canonical event name
  std::string body;                 // the event as JSON (see bridge/event_input.h)
  std::int64_t received_at_ms = 0;  // unix epoch milliseconds
  EventState state = EventState::pending;
};

struct ActionRecord {
  std::int64_t event_seq = 0;
  std::string rule;
  int attempt = 1;
  ActionState state = ActionState::started;
  std::int64_t started_at_ms = 0;
  std::int64_t finished_at_ms = 0;
  std::string gate;     // why it ran
  std::string request;  // rendered request as JSON, secrets already redacted
  int status = 0;       // HTTP status, 0 when none
  std::int64_t latency_us = 0;
  std::string extracted;  // JSON object of RESPONSE_* set by this attempt
  std::string error;
};

struct CallSummary {
  std::string call_id;
  std::int64_t first_at_ms = 0, last_at_ms = 0;
  int events = 0, failed_actions = 0, pending_events = 0;
};

// The file beside a journal that holds the highest event sequence number ever handed out.
std::string event_id_mark_path(const std::string& journal_path);

class Journal {
 public:
  // Opens or creates the database; nullptr with `error` set when it cannot.
  static std::unique_ptr<Journal> open(const JournalOptions& options, std::string& error);
  ~Journal();

  // Durable on return (or nullopt with `error`, e.g. disk full or database locked).
  std::optional<StoredEvent> append_event(const std::string& call_id, const std::string& event,
                                          const std::string& body, std::string& error);

  // An event that no rule listens to, appended already finished: in the same transaction the
  // call's variables become `defaults`, then the call's current variables, then `vars`, each
  // patched over the previous (JSON objects). Durable on return.
  std::optional<StoredEvent> append_finished_event(
      const std::string& call_id, const std::string& event, const std::string& body,
      const std::string& defaults_json, const std::string& vars_json, std::string& error);

  // Records an attempt (insert or replace on event_seq+rule+attempt). Durable on return.
  bool record_action(const ActionRecord& action, std::string& error);

  // The same, queued for the next group commit without waiting: for records whose loss in a
  // crash changes nothing (a skipped gate is evaluated again on recovery).
  void record_action_later(ActionRecord action);

  // Marks the event finished and stores the call's variables (JSON object) in one transaction.
  bool finish_event(std::int64_t seq, EventState state, const std::string& call_id,
                    const std::string& vars_json, std::string& error);

  // Reads (from any thread; readers do not block the writer in WAL mode).
  std::vector<StoredEvent> pending_events();                         // by seq
  std::vector<ActionRecord> actions_of(std::int64_t event_seq);      // by rule, attempt
  std::optional<std::string> call_vars(const std::string& call_id);  // JSON object
  std::vector<StoredEvent> events_of_call(const std::string& call_id);
  std::vector<CallSummary> recent_calls(std::size_t limit, bool failures_only);
  std::vector<ActionRecord> dead_actions(std::size_t limit);
  std::optional<StoredEvent> event(std::int64_t seq);

  // Deletes calls whose last event is older than `older_than`, with their events and actions.
  std::size_t prune(std::chrono::system_clock::time_point older_than);

  // Connector state (rules::KeyValueStore): durable on return, group-committed like the rest.
  bool kv_put(std::string_view ns, std::string_view key, std::string_view value,
              std::string& error);
  void kv_put_later(std::string_view ns, std::string_view key, std::string_view value);
  bool kv_erase(std::string_view ns, std::string_view key, std::string& error);
  std::optional<std::string> kv_get(std::string_view ns, std::string_view key);
  // Keys of `ns` that start with `prefix`, in key order.
  std::vector<std::pair<std::string, std::string>> kv_scan(std::string_view ns,
                                                           std::string_view prefix = {});

  // Whether the journal's last commit worked; `reason` says why not. While it does not, asks
  // for a small write now and then to find out when it works again.
  bool writable(std::string& reason);

  // Checks a journal file, read only (PRAGMA integrity_check, the tables): what is
  // wrong, nothing when it is sound.
  static std::vector<std::string> check(const std::string& path);

  // Statistics for /metrics.
  std::uint64_t commits() const;
  std::uint64_t failed_later_writes() const;  // queued writes that did not commit
  std::chrono::microseconds last_commit_time() const;

  // Console queries (bridge/console_routes.cc): calls filtered and paged by key, counts.
  // A call's row is its first event; `seq` is the key of the next page (before_seq).
  struct CallQuery {
    std::string phone_key;  // console_phone_key() of the number searched for
    std::string call_id;
    std::int64_t from_ms = 0, to_ms = 0;  // first event received in [from, to); 0: open
    std::string event;                    // the call has an event of this name
    std::string rule;                     // a rule ran (or was skipped) for the call
    std::string outcome;                  // ok, failed, dead, unknown, running; empty: any
    std::int64_t before_seq = 0;          // 0: the newest calls
    std::size_t limit = 50;
  };
  struct CallRow {
    std::int64_t seq = 0;  // of the call's first event
    std::string call_id, tel, event;
    std::int64_t first_at_ms = 0, last_at_ms = 0;
    int events = 0;
    std::string outcome;  // as CallQuery::outcome
  };
  std::vector<CallRow> search_calls(const CallQuery& query);
  // Dead-lettered and unknown actions, newest first, with their event: by rule, by time,
  // keyed by the action's rowid (before_rowid 0: the newest).
  struct FailureRow {
    std::int64_t rowid = 0;
    ActionRecord action;
    std::string event_id, call_id, event;
  };
  std::vector<FailureRow> failures(const std::string& rule, std::int64_t since_ms,
                                   std::int64_t before_rowid, std::size_t limit);
  // The actions of events received since `since_ms`, by state; events received per minute
  // (the minute's start in unix seconds, count). Both read the journal: they survive a restart.
  std::vector<std::pair<std::string, std::int64_t>> action_counts(std::int64_t since_ms);
  std::vector<std::pair<std::int64_t, std::int64_t>> events_per_minute(std::int64_t since_ms);
  // The latencies (microseconds, ascending) of the finished attempts of events received since
  // `since_ms`, at most `limit` of them, for percentiles.
  std::vector<std::int64_t> action_latencies(std::int64_t since_ms, std::size_t limit);

 private:
  struct Impl;
  explicit Journal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbridge::bridge
