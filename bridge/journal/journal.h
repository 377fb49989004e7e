// The journal: every accepted event, every rule attempt, each call's variables and the
// connectors' key-value state. An interface with two implementations (SQLite, see
// bridge/journal/sqlite/, and PostgreSQL, bridge/journal/postgres/); docs/reliability.md ("The
// journal") is the contract a backend keeps. Writes are durable on return and group-committed:
// concurrent callers share one transaction.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callbridge::bridge {

enum class JournalBackend { sqlite, postgres };

// Key-value entries that belong to one event: every key of namespace `ns` that belongs to the
// event starts with `key_prefix(event_id)`. The journal knows no key layout; the namespace's
// owner says where an event's keys are, and prune deletes them with the event's call.
struct EventScopedKeys {
  std::string ns;
  std::function<std::string(std::string_view event_id)> key_prefix;
};

struct JournalOptions {
  // {path, fsync_each_commit, max_batch}, the rest set by name.
  JournalOptions(std::string path = "callbridge.db", bool fsync_each_commit = true,
                 std::size_t max_batch = 512)
      : path(std::move(path)), fsync_each_commit(fsync_each_commit), max_batch(max_batch) {}

  std::string path;        // SQLite: the database file
  bool fsync_each_commit;  // SQLite synchronous=FULL, PostgreSQL synchronous_commit as the
                           // server's; false: NORMAL / off (survives a process crash only)
  std::size_t max_batch;   // writes per transaction at most
  JournalBackend backend = JournalBackend::sqlite;
  std::string postgres;                       // PostgreSQL: the connection URL (backend postgres)
  std::vector<EventScopedKeys> event_scoped;  // pruned with their event's call
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

// The outcomes that count as a failed action (history's failed_actions, `history --failures`,
// the dispatcher's warning). Backends build their queries from this list.
inline constexpr ActionState kFailureStates[] = {ActionState::http_error, ActionState::failed,
                                                 ActionState::unknown, ActionState::dead};
bool is_failure(ActionState state);

std::string_view to_string(EventState state);
std::string_view to_string(ActionState state);
std::optional<EventState> event_state_from(std::string_view text);
std::optional<ActionState> action_state_from(std::string_view text);

struct StoredEvent {
  std::int64_t seq = 0;  // arrival order, global
  std::string event_id;  // "ev-<seq>" style public ID
  std::string call_id;
  std::string event;                // canonical event name
  std::string body;                 // the event as JSON (see bridge/event_input.h)
  std::int64_t received_at_ms = 0;  // unix epoch milliseconds
  EventState state = EventState::pending;
  std::int64_t call_pos = 0;  // its place in its call (cluster mode's reads; 0: not read)
};

// The public ID of the event with sequence number `seq`.
std::string event_id_of(std::int64_t seq);

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
  std::string response;  // the response body, capped and redacted (action_record.h)
};

// Those of `names` that are not in `held`, in the order of `names` (a renewal's lost leases).
std::vector<std::string> not_held(const std::vector<std::string>& names,
                                  const std::vector<std::string>& held);

// A fencing token: writes carrying it apply only while `lease` is still held with `epoch`.
struct Fence {
  std::string lease;
  std::int64_t epoch = 0;
  bool empty() const { return lease.empty(); }  // unfenced
};

// The error of a fenced write whose lease is gone (taken over, expired or released).
inline constexpr std::string_view kLeaseLost = "lease lost";

// Cluster mode: an event appended with its call's lease (Journal::append_event_leased).
struct LeasedEvent {
  StoredEvent event;                  // with call_pos
  std::optional<std::int64_t> epoch;  // the call's lease when the owner took or holds it
  std::int64_t earlier_pending = 0;   // lowest call_pos of the call's earlier pending events
};

// Cluster mode: a call with pending events (Journal::pending_calls).
struct PendingCall {
  std::string call_id;
  std::int64_t last_pos = 0;  // the highest call_pos pending
  std::string owner;          // who holds its lease live; empty: nobody, it can be claimed
  std::int64_t epoch = 0;     // that lease's epoch
};

struct CallSummary {
  std::string call_id;
  std::int64_t first_at_ms = 0, last_at_ms = 0;
  int events = 0, failed_actions = 0, pending_events = 0;
};

// What prune does, in this order, in one transaction. Every backend runs exactly these steps,
// each one statement or function, so that they delete the same rows.
enum class PruneStep {
  select_calls,       // calls whose last event is older than the cutoff and none still pending
  delete_actions,     // the attempts of their events
  delete_event_keys,  // the key-value entries of their events (JournalOptions::event_scoped)
  delete_events,      // their events
  delete_calls,       // their variables (and their expired call leases)
};
inline constexpr PruneStep kPruneSteps[] = {PruneStep::select_calls, PruneStep::delete_actions,
                                            PruneStep::delete_event_keys, PruneStep::delete_events,
                                            PruneStep::delete_calls};
std::string_view to_string(PruneStep step);

class Journal {
 public:
  // Opens or creates the configured backend's journal; nullptr with `error` set when it cannot.
  static std::unique_ptr<Journal> open(const JournalOptions& options, std::string& error);
  virtual ~Journal() = default;

  // Durable on return (or nullopt with `error`, e.g. disk full or database locked).
  virtual std::optional<StoredEvent> append_event(const std::string& call_id,
                                                  const std::string& event, const std::string& body,
                                                  std::string& error) = 0;

  // An event that no rule listens to, appended already finished: in the same transaction the
  // call's variables become `defaults`, then the call's current variables, then `vars`, each
  // patched over the previous (JSON objects). Durable on return.
  virtual std::optional<StoredEvent> append_finished_event(
      const std::string& call_id, const std::string& event, const std::string& body,
      const std::string& defaults_json, const std::string& vars_json, std::string& error) = 0;

  // Records an attempt (insert or replace on event_seq+rule+attempt). Durable on return.
  virtual bool record_action(const ActionRecord& action, std::string& error) = 0;

  // The same, queued for the next group commit without waiting: for records whose loss in a
  // crash changes nothing (a skipped gate is evaluated again on recovery).
  virtual void record_action_later(ActionRecord action) = 0;

  // Marks the event finished and stores the call's variables (JSON object) in one transaction.
  virtual bool finish_event(std::int64_t seq, EventState state, const std::string& call_id,
                            const std::string& vars_json, std::string& error) = 0;

  // Reads, from any thread; they do not wait for the group commit.
  virtual std::vector<StoredEvent> pending_events() = 0;                         // by seq
  virtual std::vector<ActionRecord> actions_of(std::int64_t event_seq) = 0;      // in record order
  virtual std::optional<std::string> call_vars(const std::string& call_id) = 0;  // JSON object
  virtual std::vector<StoredEvent> events_of_call(const std::string& call_id) = 0;  // by seq
  // The two reads above for whoever decides what to send from them (the dispatcher resuming an
  // event, replay): false with `error` when the journal could not be read, which must not be
  // taken for "no attempts yet" (that would send a request again). `vars`: nullopt when the
  // call has none yet.
  virtual bool read_actions_of(std::int64_t event_seq, std::vector<ActionRecord>& out,
                               std::string& error) {
    out = actions_of(event_seq);
    error.clear();
    return true;
  }
  virtual bool read_call_vars(const std::string& call_id, std::optional<std::string>& vars,
                              std::string& error) {
    vars = call_vars(call_id);
    error.clear();
    return true;
  }
  // Newest first (by last event); failures_only: calls with an action in kFailureStates.
  virtual std::vector<CallSummary> recent_calls(std::size_t limit, bool failures_only) = 0;
  virtual std::vector<ActionRecord> dead_actions(std::size_t limit) = 0;  // dead or unknown
  virtual std::optional<StoredEvent> event(std::int64_t seq) = 0;

  // Runs kPruneSteps for calls whose last event is older than `older_than`: how many calls.
  virtual std::size_t prune(std::chrono::system_clock::time_point older_than) = 0;

  // Connector state (rules::KeyValueStore): durable on return, group-committed like the rest.
  virtual bool kv_put(std::string_view ns, std::string_view key, std::string_view value,
                      std::string& error) = 0;
  virtual void kv_put_later(std::string_view ns, std::string_view key, std::string_view value) = 0;
  virtual bool kv_erase(std::string_view ns, std::string_view key, std::string& error) = 0;
  virtual std::optional<std::string> kv_get(std::string_view ns, std::string_view key) = 0;
  // Keys of `ns` that start with `prefix`, in key order (bytewise).
  virtual std::vector<std::pair<std::string, std::string>> kv_scan(
      std::string_view ns, std::string_view prefix = {}) = 0;

  // Conditional key-value write (delivery IDs seen by several nodes): stores `value` only when
  // the key's current value is `expected` (nullopt: the key is absent), decided in the
  // database, so of nodes racing for one key exactly one stores. Durable on return. true:
  // stored; false: not stored, with `error` empty when another value was there.
  virtual bool kv_put_if(std::string_view ns, std::string_view key, std::string_view value,
                         std::optional<std::string_view> expected, std::string& error) = 0;
  bool kv_put_if_absent(std::string_view ns, std::string_view key, std::string_view value,
                        std::string& error) {
    return kv_put_if(ns, key, value, std::nullopt, error);
  }

  // Leases (docs/cluster.md): named rows `call:<call_id>`, `chain:<chain_id>`,
  // `singleton:<what>` with an owner, an epoch and an expiry on the database's clock (SQLite: this
  // process's). Takes lease `name` for `owner` for `ttl` when it is free, expired, or already
  // owner's (then renewed): the epoch held. A lease that was not live (free, expired, released)
  // is taken with an epoch higher than any before, so epochs never repeat. nullopt when another
  // owner holds it live, or on error. Durable on return.
  virtual std::optional<std::int64_t> acquire_lease(std::string_view name, std::string_view owner,
                                                    std::chrono::milliseconds ttl) = 0;
  // Extends those of `names` that `owner` still holds; returns the names it no longer holds
  // (all of them when the journal cannot be written).
  virtual std::vector<std::string> renew_leases(std::string_view owner,
                                                const std::vector<std::string>& names,
                                                std::chrono::milliseconds ttl) = 0;
  // Lets it go (expires it now) if still held with `epoch`. Durable on return.
  virtual void release_lease(std::string_view name, std::int64_t epoch) = 0;
  // A key-value write applied only while `fence` holds; false with error "lease lost" otherwise
  // (an empty fence: kv_put).
  virtual bool kv_put_fenced(std::string_view ns, std::string_view key, std::string_view value,
                             const Fence& fence, std::string& error) = 0;

  // Cluster mode (docs/cluster.md): what a node of several on one database needs beyond the
  // primitive. PostgreSQL implements them in one statement each; the defaults (journal.cc) suit
  // a journal one node owns.
  // Appends the event and, in the same transaction, takes the call's lease `call:<call_id>`
  // for `owner` when it is free or already owner's. Durable on return.
  virtual std::optional<LeasedEvent> append_event_leased(
      const std::string& call_id, const std::string& event, const std::string& body,
      std::string_view owner, std::chrono::milliseconds ttl, std::string& error);
  // An event that no rule listens to and no one follows: when its call has no pending event
  // (on any node), it is stored finished, its call's variables patched as append_finished_event
  // does, in the same transaction and without a lease (the call's position, taken in that
  // transaction, keeps other appends of the call out until it commits); otherwise it is stored
  // as append_event_leased stores it. The event's state says which. Durable on return.
  virtual std::optional<LeasedEvent> append_idle_event(
      const std::string& call_id, const std::string& event, const std::string& body,
      const std::string& defaults_json, const std::string& vars_json, std::string_view owner,
      std::chrono::milliseconds ttl, std::string& error);
  // The call's pending events by call_pos.
  virtual std::vector<StoredEvent> pending_events_of(const std::string& call_id);
  // Calls with pending events (only those of `only` when not empty), oldest first, with their
  // live lease if any.
  virtual std::vector<PendingCall> pending_calls(const std::vector<std::string>& only,
                                                 std::size_t limit);
  // record_action, record_action_later and finish_event fenced with the call's lease: with a
  // fence that no longer holds nothing is written and the error is kLeaseLost (an empty
  // fence: the unfenced write).
  virtual bool record_action_fenced(const ActionRecord& action, const Fence& fence,
                                    std::string& error);
  virtual void record_action_later_fenced(ActionRecord action, Fence fence);
  virtual bool finish_event_fenced(std::int64_t seq, EventState state, const std::string& call_id,
                                   const std::string& vars_json, const Fence& fence,
                                   std::string& error);
  // record_action_fenced for several records at once, in order, in one transaction.
  virtual bool record_actions_fenced(const std::vector<ActionRecord>& records, const Fence& fence,
                                     std::string& error);
  // Writes `records` (in order), then finish_event_fenced, in one transaction.
  virtual bool finish_event_with(const std::vector<ActionRecord>& records, std::int64_t seq,
                                 EventState state, const std::string& call_id,
                                 const std::string& vars_json, const Fence& fence,
                                 std::string& error);
  // Lets the call's lease go if still held with `epoch` and the call has no pending event;
  // true when it did.
  virtual bool release_call_lease(const std::string& call_id, std::int64_t epoch);
  // The same, queued for the next group commit without waiting (written in queue order).
  virtual void release_call_lease_later(const std::string& call_id, std::int64_t epoch);
  // Waits up to `timeout` for other owners' hints that they stored events of calls they did
  // not take (LISTEN/NOTIFY); their call IDs ("*": too many to name, poll everything).
  virtual std::vector<std::string> wait_for_stored_events(std::string_view owner,
                                                          std::chrono::milliseconds timeout);

  // Whether the journal's last commit worked; `reason` says why not. While it does not, asks
  // for a small write now and then to find out when it works again.
  virtual bool writable(std::string& reason) = 0;

  // Statistics for /metrics.
  virtual std::uint64_t commits() const = 0;
  virtual std::uint64_t failed_later_writes() const = 0;  // queued writes that did not commit
  virtual std::chrono::microseconds last_commit_time() const = 0;

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
  virtual std::vector<CallRow> search_calls(const CallQuery& query) = 0;
  // Dead-lettered and unknown actions, newest first, with their event: by rule, by time,
  // keyed by the action's rowid (before_rowid 0: the newest). `rowid` is the backend's key of
  // the action row: SQLite's rowid, PostgreSQL's identity column actions.id.
  struct FailureRow {
    std::int64_t rowid = 0;
    ActionRecord action;
    std::string event_id, call_id, event;
  };
  virtual std::vector<FailureRow> failures(const std::string& rule, std::int64_t since_ms,
                                           std::int64_t before_rowid, std::size_t limit) = 0;
  // The actions of events received since `since_ms`, by state; events received per minute
  // (the minute's start in unix seconds, count). Both read the journal: they survive a restart.
  virtual std::vector<std::pair<std::string, std::int64_t>> action_counts(
      std::int64_t since_ms) = 0;
  virtual std::vector<std::pair<std::int64_t, std::int64_t>> events_per_minute(
      std::int64_t since_ms) = 0;
  // The latencies (microseconds, ascending) of the finished attempts of events received since
  // `since_ms`, at most `limit` of them, for percentiles.
  virtual std::vector<std::int64_t> action_latencies(std::int64_t since_ms, std::size_t limit) = 0;
};

}  // namespace callbridge::bridge
