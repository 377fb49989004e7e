#include "bridge/journal/sqlite/sqlite_journal.h"

#include <algorithm>

#include "bridge/journal/sqlite/schema.h"

namespace callbridge::bridge {

using sqlite::Connection;
using sqlite::errmsg;
using sqlite::exec;
using sqlite::Statement;

namespace sqlite {

std::string failure_states_sql() {
  std::string out = "(";
  for (ActionState s : kFailureStates)
    out += (out.size() > 1 ? ",'" : "'") + std::string(to_string(s)) + "'";
  return out + ")";
}

}  // namespace sqlite

namespace {

constexpr const char* kRecoveryHint =
    "stop callbridge, keep a copy of the file with its -wal and -shm files, then restore a backup "
    "or recover it as docs/reliability.md describes (\"Recovering a damaged journal\")";

// Errors after which the journal cannot be written until something outside changes.
bool storage_failure(int code) {
  switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_NOMEM:
      return true;
    default:
      return false;
  }
}

// The keys that start with `prefix` are the range [prefix, prefix_end(prefix)): keys compare
// byte by byte, so the primary key finds them without reading the rest of the namespace (a note
// per event adds up to millions of keys). Empty when no string follows them all.
std::string prefix_end(std::string_view prefix) {
  std::string after(prefix);
  while (!after.empty() && static_cast<unsigned char>(after.back()) == 0xFF) after.pop_back();
  if (!after.empty())
    after.back() = static_cast<char>(static_cast<unsigned char>(after.back()) + 1);
  return after;
}

constexpr const char* kEventColumns = "seq, call_id, event, body, received_at, state";
constexpr const char* kActionColumns =
    "event_seq, rule, attempt, state, started_at, finished_at, gate, request, status, latency_us, "
    "extracted, error, response";

StoredEvent read_event(const Statement& s) {
  StoredEvent e;
  e.seq = s.integer(0);
  e.event_id = event_id_of(e.seq);
  e.call_id = s.text(1);
  e.event = s.text(2);
  e.body = s.text(3);
  e.received_at_ms = s.integer(4);
  e.state = event_state_from(s.text(5)).value_or(EventState::pending);
  return e;
}

ActionRecord read_action(const Statement& s) {
  ActionRecord a;
  a.event_seq = s.integer(0);
  a.rule = s.text(1);
  a.attempt = static_cast<int>(s.integer(2));
  a.state = action_state_from(s.text(3)).value_or(ActionState::failed);
  a.started_at_ms = s.integer(4);
  a.finished_at_ms = s.integer(5);
  a.gate = s.text(6);
  a.request = s.text(7);
  a.status = static_cast<int>(s.integer(8));
  a.latency_us = s.integer(9);
  a.extracted = s.text(10);
  a.error = s.text(11);
  a.response = s.text(12);
  return a;
}

}  // namespace

std::vector<std::string> SqliteJournal::check(const std::string& path) {
  return sqlite::check_journal_file(path);
}

std::unique_ptr<SqliteJournal> SqliteJournal::open(const JournalOptions& options,
                                                   std::string& error) {
  std::unique_ptr<SqliteJournal> j(new SqliteJournal());
  j->options_ = options;
  const std::string& path = options.path;
  if (sqlite::empty_file(path)) {
    error = "journal " + path +
            " is empty (0 bytes), so its calls and events are gone; refusing to start with an "
            "empty journal. Restore it from a backup, or delete the file to start a new, empty "
            "journal on purpose";
    return nullptr;
  }
  if (!j->writer_.open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                       error))
    return nullptr;
  sqlite3* db = j->writer_.db();
  std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") +
                        (options.fsync_each_commit ? "FULL" : "NORMAL") + ";";
  auto damaged = [&](const std::string& what) {
    error = "journal " + path + " is damaged (" + what + "); " + kRecoveryHint;
  };
  if (!exec(db, pragmas.c_str(), error)) {
    int code = sqlite3_errcode(db);
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) damaged(error);
    return nullptr;
  }
  // A quick structural check (pages, records, no index contents): damage found now is damage
  // that would otherwise show as calls that answer 404 or writes that fail later.
  if (auto problems = sqlite::check_database(db, "PRAGMA quick_check"); !problems.empty()) {
    damaged(sqlite::join_problems(problems, 5));
    return nullptr;
  }
  if (!sqlite::migrate(j->writer_, error)) return nullptr;
  if (sqlite::is_file_database(path)) {
    if (!sqlite::continue_event_ids(j->writer_, path, j->ids_, error)) return nullptr;
    j->mark_ids_ = true;
  }
  if (!exec(db, "CREATE TEMP TABLE IF NOT EXISTS old_calls (call_id TEXT PRIMARY KEY)", error))
    return nullptr;
  if (!j->reader_.open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, error)) return nullptr;
  SqliteJournal* self = j.get();
  j->group_ = std::make_unique<GroupCommit>(
      options.max_batch,
      [self](const std::vector<GroupCommit::Apply*>& batch) { return self->commit_batch(batch); });
  return j;
}

SqliteJournal::~SqliteJournal() {
  group_.reset();  // writes what is queued while the connections are open
}

std::vector<std::string> SqliteJournal::commit_batch(
    const std::vector<GroupCommit::Apply*>& batch) {
  sqlite3* db = writer_.db();
  std::vector<std::string> results(batch.size());
  std::string error;
  bool ok = exec(db, "BEGIN IMMEDIATE", error);
  for (std::size_t i = 0; ok && i < batch.size(); ++i) {
    // A failing write rolls back only itself, so it does not take the batch down with it.
    // A write of several statements is undone whole when one of them fails.
    std::string write_error;
    Statement(writer_, "SAVEPOINT write").step();
    bool applied = (*batch[i])(write_error);
    int code = sqlite3_errcode(db);
    if (!applied && !sqlite3_get_autocommit(db)) Statement(writer_, "ROLLBACK TO write").step();
    if (!sqlite3_get_autocommit(db)) Statement(writer_, "RELEASE write").step();
    if (!applied) {
      results[i] = write_error.empty() ? errmsg(db) : write_error;
      // A full disk or an I/O error may roll the whole transaction back: then what follows
      // would commit on its own while its caller hears of a failure; fail the batch instead.
      if (sqlite3_get_autocommit(db)) {
        ok = false;
        error = results[i];
      } else if (storage_failure(code)) {
        note_health(false, results[i]);
      }
    }
  }
  auto started = std::chrono::steady_clock::now();
  if (ok) ok = exec(db, "COMMIT", error);
  last_commit_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
  if (!ok) {
    std::string ignored;
    exec(db, "ROLLBACK", ignored);
    for (auto& r : results) r = error.empty() ? "commit failed" : error;
    note_health(false, error.empty() ? "commit failed" : error);
  } else {
    ++commits_;
    if (std::none_of(results.begin(), results.end(),
                     [](const std::string& r) { return !r.empty(); }))
      note_health(true, {});
  }
  return results;
}

// Inserts `stored` (call, event, body, received_at, state) and sets its seq and public ID.
bool SqliteJournal::insert_event(StoredEvent& stored, std::string& e) {
  Statement s(writer_,
              "INSERT INTO events (call_id, event, body, received_at, state, finished_at) VALUES "
              "(?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 = 'pending' THEN NULL ELSE ?4 END)");
  s.bind(1, stored.call_id).bind(2, stored.event).bind(3, stored.body);
  s.bind(4, stored.received_at_ms).bind(5, to_string(stored.state));
  if (!s.run(e)) return false;
  stored.seq = sqlite3_last_insert_rowid(writer_.db());
  stored.event_id = event_id_of(stored.seq);
  return !mark_ids_ || ids_.cover(stored.seq, e);
}

std::optional<StoredEvent> SqliteJournal::append_finished_event(
    const std::string& call_id, const std::string& event, const std::string& body,
    const std::string& defaults_json, const std::string& vars_json, std::string& error) {
  StoredEvent stored = new_event(call_id, event, body, EventState::done);
  bool ok = group_->submit(
      [&](std::string& e) {
        if (!insert_event(stored, e)) return false;
        Statement v(writer_,
                    "INSERT INTO calls (call_id, vars, updated_at) VALUES (?1, json_patch(?2, ?3), "
                    "?4) ON CONFLICT (call_id) DO UPDATE SET vars = "
                    "json_patch(json_patch(?2, calls.vars), ?3), updated_at = ?4");
        v.bind(1, call_id).bind(2, defaults_json).bind(3, vars_json).bind(4, stored.received_at_ms);
        return v.run(e);
      },
      error);
  if (!ok) return std::nullopt;
  return stored;
}

GroupCommit::Apply SqliteJournal::write_action(ActionRecord a) {
  return [this, a = std::move(a)](std::string& e) {
    // An attempt's outcome updates its started record in place (its rowid, the order records
    // are listed in, stays that of its start, as PostgreSQL's id does).
    Statement s(writer_,
                "INSERT INTO actions (event_seq, rule, attempt, state, started_at, finished_at, "
                "gate, request, status, latency_us, extracted, error, response) "
                "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13) "
                "ON CONFLICT (event_seq, rule, attempt) DO UPDATE SET state = ?4, "
                "started_at = ?5, finished_at = ?6, gate = ?7, request = ?8, status = ?9, "
                "latency_us = ?10, extracted = ?11, error = ?12, response = ?13");
    s.bind(1, a.event_seq)
        .bind(2, a.rule)
        .bind(3, std::int64_t{a.attempt})
        .bind(4, to_string(a.state));
    s.bind(5, a.started_at_ms).bind(6, a.finished_at_ms).bind(7, a.gate).bind(8, a.request);
    s.bind(9, std::int64_t{a.status})
        .bind(10, a.latency_us)
        .bind(11, a.extracted)
        .bind(12, a.error)
        .bind(13, a.response);
    return s.run(e);
  };
}

GroupCommit::Apply SqliteJournal::write_kv(std::string ns, std::string key, std::string value) {
  return [this, ns = std::move(ns), key = std::move(key),
          value = std::move(value)](std::string& e) {
    Statement s(writer_,
                "INSERT INTO kv (ns, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
    s.bind(1, ns).bind(2, key).bind(3, value).bind(4, now_ms());
    return s.run(e);
  };
}

bool SqliteJournal::write_kv_if(const std::string& ns, const std::string& key,
                                const std::string& value,
                                const std::optional<std::string>& expected, bool& stored,
                                std::string& error) {
  if (!expected) {
    Statement s(writer_,
                "INSERT INTO kv (ns, key, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ns, key) DO NOTHING");
    s.bind(1, ns).bind(2, key).bind(3, value).bind(4, now_ms());
    if (!s.run(error)) return false;
  } else {
    Statement s(writer_,
                "UPDATE kv SET value = ?, updated_at = ? WHERE ns = ? AND key = ? AND value = ?");
    s.bind(1, value).bind(2, now_ms()).bind(3, ns).bind(4, key).bind(5, *expected);
    if (!s.run(error)) return false;
  }
  stored = sqlite3_changes(writer_.db()) == 1;
  return true;
}

bool SqliteJournal::write_finish(std::int64_t seq, EventState state, const std::string& call_id,
                                 const std::string& vars_json, std::string& e) {
  std::int64_t now = now_ms();
  Statement s(writer_, "UPDATE events SET state = ?, finished_at = ? WHERE seq = ?");
  s.bind(1, to_string(state)).bind(2, now).bind(3, seq);
  if (!s.run(e)) return false;
  Statement v(writer_,
              "INSERT INTO calls (call_id, vars, updated_at) VALUES (?, ?, ?) "
              "ON CONFLICT (call_id) DO UPDATE SET vars = excluded.vars, updated_at = "
              "excluded.updated_at");
  v.bind(1, call_id).bind(2, vars_json).bind(3, now);
  return v.run(e);
}

bool SqliteJournal::finish_event(std::int64_t seq, EventState state, const std::string& call_id,
                                 const std::string& vars_json, std::string& error) {
  return group_->submit(
      [&](std::string& e) { return write_finish(seq, state, call_id, vars_json, e); }, error);
}

bool SqliteJournal::record_actions_fenced(const std::vector<ActionRecord>& records,
                                          const Fence& fence, std::string& error) {
  if (!fence.empty()) return Journal::record_actions_fenced(records, fence, error);
  return group_->submit(
      [&](std::string& e) {
        for (const ActionRecord& record : records)
          if (!write_action(record)(e)) return false;
        return true;
      },
      error);
}

bool SqliteJournal::finish_event_with(const std::vector<ActionRecord>& records, std::int64_t seq,
                                      EventState state, const std::string& call_id,
                                      const std::string& vars_json, const Fence& fence,
                                      std::string& error) {
  if (!fence.empty())
    return Journal::finish_event_with(records, seq, state, call_id, vars_json, fence, error);
  return group_->submit(
      [&](std::string& e) {
        for (const ActionRecord& record : records)
          if (!write_action(record)(e)) return false;
        return write_finish(seq, state, call_id, vars_json, e);
      },
      error);
}

std::vector<StoredEvent> SqliteJournal::pending_events() {
  return read([](Connection& db) {
    std::vector<StoredEvent> out;
    Statement s(db, std::string("SELECT ") + kEventColumns +
                        " FROM events WHERE state = 'pending' ORDER BY seq");
    while (s.step() == SQLITE_ROW) out.push_back(read_event(s));
    return out;
  });
}

std::vector<ActionRecord> SqliteJournal::actions_of(std::int64_t event_seq) {
  return read([&](Connection& db) {
    std::vector<ActionRecord> out;
    Statement s(db, std::string("SELECT ") + kActionColumns +
                        " FROM actions WHERE event_seq = ? ORDER BY rowid");
    s.bind(1, event_seq);
    while (s.step() == SQLITE_ROW) out.push_back(read_action(s));
    return out;
  });
}

std::optional<std::string> SqliteJournal::call_vars(const std::string& call_id) {
  return read([&](Connection& db) -> std::optional<std::string> {
    Statement s(db, "SELECT vars FROM calls WHERE call_id = ?");
    s.bind(1, call_id);
    if (s.step() == SQLITE_ROW) return s.text(0);
    return std::nullopt;
  });
}

std::vector<StoredEvent> SqliteJournal::events_of_call(const std::string& call_id) {
  return read([&](Connection& db) {
    std::vector<StoredEvent> out;
    Statement s(
        db, std::string("SELECT ") + kEventColumns + " FROM events WHERE call_id = ? ORDER BY seq");
    s.bind(1, call_id);
    while (s.step() == SQLITE_ROW) out.push_back(read_event(s));
    return out;
  });
}

std::optional<StoredEvent> SqliteJournal::event(std::int64_t seq) {
  return read([&](Connection& db) -> std::optional<StoredEvent> {
    Statement s(db, std::string("SELECT ") + kEventColumns + " FROM events WHERE seq = ?");
    s.bind(1, seq);
    if (s.step() == SQLITE_ROW) return read_event(s);
    return std::nullopt;
  });
}

std::vector<CallSummary> SqliteJournal::recent_calls(std::size_t limit, bool failures_only) {
  static const std::string failed =
      "COUNT(a.rule) FILTER (WHERE a.state IN " + sqlite::failure_states_sql() + ")";
  return read([&](Connection& db) {
    std::vector<CallSummary> out;
    std::string sql =
        "SELECT e.call_id, MIN(e.received_at), MAX(e.received_at), "
        "COUNT(DISTINCT e.seq), " +
        failed +
        ", COUNT(DISTINCT e.seq) FILTER (WHERE e.state = 'pending') "
        "FROM events e LEFT JOIN actions a ON a.event_seq = e.seq GROUP BY e.call_id ";
    if (failures_only) sql += "HAVING " + failed + " > 0 ";
    sql += "ORDER BY MAX(e.seq) DESC LIMIT ?";
    Statement s(db, sql);
    s.bind(1, static_cast<std::int64_t>(limit));
    while (s.step() == SQLITE_ROW) {
      CallSummary c;
      c.call_id = s.text(0);
      c.first_at_ms = s.integer(1);
      c.last_at_ms = s.integer(2);
      c.events = static_cast<int>(s.integer(3));
      c.failed_actions = static_cast<int>(s.integer(4));
      c.pending_events = static_cast<int>(s.integer(5));
      out.push_back(c);
    }
    return out;
  });
}

std::vector<ActionRecord> SqliteJournal::dead_actions(std::size_t limit) {
  return read([&](Connection& db) {
    std::vector<ActionRecord> out;
    Statement s(db, std::string("SELECT ") + kActionColumns +
                        " FROM actions WHERE state IN ('dead', 'unknown') ORDER BY rowid DESC "
                        "LIMIT ?");
    s.bind(1, static_cast<std::int64_t>(limit));
    while (s.step() == SQLITE_ROW) out.push_back(read_action(s));
    return out;
  });
}

// Each step of kPruneSteps, on the writer thread inside prune's transaction. The calls chosen
// by select_calls are in the temporary table old_calls.
bool SqliteJournal::prune_step(PruneStep step, PruneRun& run, std::string& e) {
  switch (step) {
    case PruneStep::select_calls: {
      Statement clear(writer_, "DELETE FROM old_calls");
      if (!clear.run(e)) return false;
      Statement s(writer_,
                  "INSERT INTO old_calls SELECT call_id FROM events GROUP BY call_id "
                  "HAVING MAX(received_at) < ?1 AND SUM(state = 'pending') = 0");
      s.bind(1, run.cutoff_ms);
      if (!s.run(e)) return false;
      run.calls = static_cast<std::size_t>(sqlite3_changes(writer_.db()));
      return true;
    }
    case PruneStep::delete_actions:
      return Statement(writer_,
                       "DELETE FROM actions WHERE event_seq IN (SELECT seq FROM events WHERE "
                       "call_id IN old_calls)")
          .run(e);
    case PruneStep::delete_event_keys: {
      // Each event's keys are a range of the primary key: one indexed delete per event.
      std::vector<std::int64_t> seqs;
      {
        Statement s(writer_, "SELECT seq FROM events WHERE call_id IN old_calls");
        while (s.step() == SQLITE_ROW) seqs.push_back(s.integer(0));
      }
      for (const EventScopedKeys& scoped : options_.event_scoped) {
        for (std::int64_t seq : seqs) {
          std::string prefix = scoped.key_prefix(event_id_of(seq));
          if (prefix.empty()) continue;  // would be the whole namespace
          std::string end = prefix_end(prefix);
          Statement d(writer_, end.empty()
                                   ? "DELETE FROM kv WHERE ns = ?1 AND key >= ?2"
                                   : "DELETE FROM kv WHERE ns = ?1 AND key >= ?2 AND key < ?3");
          d.bind(1, scoped.ns).bind(2, prefix);
          if (!end.empty()) d.bind(3, end);
          if (!d.run(e)) return false;
        }
      }
      return true;
    }
    case PruneStep::delete_events:
      return Statement(writer_, "DELETE FROM events WHERE call_id IN old_calls").run(e);
    case PruneStep::delete_calls: {
      // The call's variables, and its lease's row once it expired before the cutoff (no node
      // can still hold an epoch of it).
      if (!Statement(writer_, "DELETE FROM calls WHERE call_id IN old_calls").run(e)) return false;
      Statement leases(writer_,
                       "DELETE FROM leases WHERE name IN (SELECT 'call:' || call_id FROM "
                       "old_calls) AND expires_at < ?1");
      leases.bind(1, run.cutoff_ms);
      return leases.run(e);
    }
  }
  e = "unknown prune step";
  return false;
}

bool SqliteJournal::kv_erase(std::string_view ns, std::string_view key, std::string& error) {
  return group_->submit(
      [&](std::string& e) {
        Statement s(writer_, "DELETE FROM kv WHERE ns = ? AND key = ?");
        s.bind(1, ns).bind(2, key);
        return s.run(e);
      },
      error);
}

std::optional<std::string> SqliteJournal::kv_get(std::string_view ns, std::string_view key) {
  return read([&](Connection& db) -> std::optional<std::string> {
    Statement s(db, "SELECT value FROM kv WHERE ns = ? AND key = ?");
    s.bind(1, ns).bind(2, key);
    if (s.step() == SQLITE_ROW) return s.text(0);
    return std::nullopt;
  });
}

std::vector<std::pair<std::string, std::string>> SqliteJournal::kv_scan(std::string_view ns,
                                                                        std::string_view prefix) {
  std::string after = prefix_end(prefix);
  return read([&](Connection& db) {
    std::vector<std::pair<std::string, std::string>> out;
    Statement s(db, after.empty()
                        ? "SELECT key, value FROM kv WHERE ns = ?1 AND key >= ?2 ORDER BY key"
                        : "SELECT key, value FROM kv WHERE ns = ?1 AND key >= ?2 AND key < ?3 "
                          "ORDER BY key");
    s.bind(1, ns).bind(2, prefix);
    if (!after.empty()) s.bind(3, after);
    while (s.step() == SQLITE_ROW) out.emplace_back(s.text(0), s.text(1));
    return out;
  });
}

}  // namespace callbridge::bridge
