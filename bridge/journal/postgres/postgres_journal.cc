#include "bridge/journal/postgres/postgres_journal.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>

#include "bridge/journal/postgres/schema.h"

namespace callbridge::bridge {

using pg::Connection;
using pg::Params;
using pg::Result;

namespace pg {

// RFC 7386 merge patches, as SQLite's json_patch: `patches` applied in order to an empty
// object. nullopt with `error` when one is not JSON.
std::optional<std::string> merged(std::initializer_list<const std::string*> patches,
                                  std::string& error) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  bool first = true;
  for (const std::string* text : patches) {
    auto patch = nlohmann::ordered_json::parse(*text, nullptr, false);
    if (patch.is_discarded()) {
      error = "malformed JSON";
      return std::nullopt;
    }
    if (first)
      out = std::move(patch);
    else
      out.merge_patch(patch);
    first = false;
  }
  return out.dump();
}

std::string failure_states_sql() {
  std::string out = "(";
  for (ActionState s : kFailureStates)
    out += (out.size() > 1 ? ",'" : "'") + std::string(to_string(s)) + "'";
  return out + ")";
}

}  // namespace pg

namespace {

// The keys that start with `prefix` are [prefix, end): keys compare bytewise (COLLATE "C").
// Empty when no such end is a valid text value (the prefix ends in a byte >= 0x7F: the
// incremented byte would not be UTF-8); the queries then filter with starts_with instead.
std::string prefix_end(std::string_view prefix) {
  if (prefix.empty() || static_cast<unsigned char>(prefix.back()) >= 0x7F) return {};
  std::string after(prefix);
  after.back() = static_cast<char>(after.back() + 1);
  return after;
}

constexpr const char* kEventColumns = "seq, call_id, event, body, received_at, state, call_pos";
constexpr const char* kActionColumns =
    "event_seq, rule, attempt, state, started_at, finished_at, gate, request, status, latency_us, "
    "extracted, error, response";

StoredEvent read_event(const Result& r, int row) {
  StoredEvent e;
  e.seq = r.integer(row, 0);
  e.event_id = event_id_of(e.seq);
  e.call_id = r.text(row, 1);
  e.event = r.text(row, 2);
  e.body = r.text(row, 3);
  e.received_at_ms = r.integer(row, 4);
  e.state = event_state_from(r.text(row, 5)).value_or(EventState::pending);
  e.call_pos = r.integer(row, 6);
  return e;
}

std::vector<StoredEvent> read_events(const Result& r) {
  std::vector<StoredEvent> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_event(r, i));
  return out;
}

std::vector<ActionRecord> read_actions(const Result& r) {
  std::vector<ActionRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    ActionRecord a;
    a.event_seq = r.integer(i, 0);
    a.rule = r.text(i, 1);
    a.attempt = static_cast<int>(r.integer(i, 2));
    a.state = action_state_from(r.text(i, 3)).value_or(ActionState::failed);
    a.started_at_ms = r.integer(i, 4);
    a.finished_at_ms = r.integer(i, 5);
    a.gate = r.text(i, 6);
    a.request = r.text(i, 7);
    a.status = static_cast<int>(r.integer(i, 8));
    a.latency_us = r.integer(i, 9);
    a.extracted = r.text(i, 10);
    a.error = r.text(i, 11);
    a.response = r.text(i, 12);
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace

std::unique_ptr<PostgresJournal> PostgresJournal::open(const JournalOptions& options,
                                                       std::string& error) {
  std::unique_ptr<PostgresJournal> j(new PostgresJournal());
  j->options_ = options;
  if (!j->writer_.open(options.postgres, error)) return nullptr;
  if (!pg::migrate(j->writer_, error)) return nullptr;
  if (!j->reader_.open(options.postgres, error)) return nullptr;
  PostgresJournal* self = j.get();
  j->group_ = std::make_unique<GroupCommit>(
      options.max_batch,
      [self](const std::vector<GroupCommit::Apply*>& batch) { return self->commit_batch(batch); });
  return j;
}

PostgresJournal::~PostgresJournal() {
  group_.reset();  // writes what is queued while the connections are open
}

namespace {

// Statements sent before their results are read, at most: the server's answers to them must fit
// in the sockets' buffers while it waits for this side to read.
constexpr std::size_t kPipelineChunk = 128;
constexpr std::string_view kBegin = "BEGIN";
constexpr std::string_view kAsyncCommit = "SET LOCAL synchronous_commit = off";
constexpr std::string_view kCommit = "COMMIT";
constexpr std::string_view kNotify = "SELECT pg_notify($1, $2)";

}  // namespace

bool PostgresJournal::result_ok(const Result& r, std::string& error) {
  if (r.ok()) return true;
  error = r.error();
  return false;
}

bool PostgresJournal::Pipelined::operator()(std::string& error) {
  std::vector<Statement> round = statements;
  while (!round.empty()) {
    std::vector<Statement> then;
    for (Statement& st : round) {
      Result r = journal->writer_.run(st.sql, st.params);
      if (!(st.check ? st.check(r, error, then) : result_ok(r, error))) return false;
    }
    round = std::move(then);
  }
  return true;
}

void PostgresJournal::roll_back() {
  forget_notify();
  if (writer_.good() && writer_.transaction() != PQTRANS_IDLE) {
    std::string ignored;
    writer_.exec("ROLLBACK", ignored);
  }
}

std::vector<std::string> PostgresJournal::commit_batch(
    const std::vector<GroupCommit::Apply*>& batch) {
  auto started = std::chrono::steady_clock::now();
  std::string error;
  QuickOutcome quick =
      writer_.ensure(error) ? commit_quick(batch, error) : QuickOutcome::write_failed;
  if (quick == QuickOutcome::write_failed) return commit_careful(batch);
  last_commit_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
  if (quick == QuickOutcome::committed) {
    ++commits_;
    note_health(true, {});
    return std::vector<std::string>(batch.size());
  }
  // COMMIT was sent and no answer came: whether it happened is unknown, so the batch is not
  // written again (an event would be stored twice); its callers learn it failed.
  if (error.empty()) error = "commit failed";
  note_health(false, error);
  return std::vector<std::string>(batch.size(), error);
}

PostgresJournal::QuickOutcome PostgresJournal::commit_quick(
    const std::vector<GroupCommit::Apply*>& batch, std::string& error) {
  std::vector<Pipelined*> pipelined;
  for (GroupCommit::Apply* apply : batch)
    if (auto* p = apply->target<Pipelined>()) pipelined.push_back(p);
  if (pipelined.size() == batch.size()) return commit_pipelined(pipelined, error);
  forget_notify();
  bool ok = writer_.exec("BEGIN", error);
  if (ok && !options_.fsync_each_commit)
    ok = writer_.exec("SET LOCAL synchronous_commit = off", error);
  for (std::size_t i = 0; ok && i < batch.size(); ++i) ok = (*batch[i])(error);
  if (!ok) {
    roll_back();
    return QuickOutcome::write_failed;
  }
  send_notify();
  Result r = writer_.exec("COMMIT");
  if (r.ok() && r.command() == "COMMIT") return QuickOutcome::committed;
  error = r.ok() ? "the transaction was rolled back" : r.error();
  if (writer_.good()) {
    roll_back();
    return QuickOutcome::write_failed;
  }
  return QuickOutcome::unknown;
}

PostgresJournal::QuickOutcome PostgresJournal::commit_pipelined(
    const std::vector<Pipelined*>& batch, std::string& error) {
  forget_notify();
  if (!writer_.enter_pipeline()) return QuickOutcome::write_failed;
  Statement notify{kNotify, {}, nullptr}, commit{kCommit, {}, nullptr};
  bool notifying = false, ended = false;
  // NOTIFY (this batch's hint, if any) and COMMIT, then the end of the pipeline.
  auto end = [&] {
    std::string channel, payload;
    notifying = take_notify(channel, payload);
    if (notifying) notify.params.add(channel).add(payload);
    ended = true;
    return (!notifying || writer_.send(notify.sql, notify.params)) &&
           writer_.send(commit.sql, commit.params) && writer_.sync();
  };
  auto abandon = [&] {
    if (!ended) writer_.sync();
    writer_.leave();
    // COMMIT was sent: unless the server is there to say the transaction failed, it may have
    // committed, and the batch must not be written again.
    if (ended && (!writer_.good() || writer_.transaction() == PQTRANS_IDLE))
      return QuickOutcome::unknown;
    roll_back();
    return QuickOutcome::write_failed;
  };
  // Round one: BEGIN and every write's statements; later rounds: what their checks added.
  struct Sent {
    Statement* statement;
    std::size_t write;  // SIZE_MAX: the transaction's own
  };
  constexpr std::size_t kOwn = SIZE_MAX;
  Statement begin{kBegin, {}, nullptr, true}, async_commit{kAsyncCommit, {}, nullptr, true};
  std::vector<Sent> round{{&begin, kOwn}};
  if (!options_.fsync_each_commit) round.push_back({&async_commit, kOwn});
  for (std::size_t i = 0; i < batch.size(); ++i)
    for (Statement& st : batch[i]->statements) round.push_back({&st, i});
  std::vector<std::vector<Statement>> then(batch.size());
  std::deque<std::vector<Statement>> later;  // keeps later rounds' statements alive
  while (!round.empty()) {
    // A round whose statements are all sure is the last: COMMIT goes with it (a statement the
    // server refuses aborts the pipeline, and COMMIT with it).
    bool last =
        std::all_of(round.begin(), round.end(), [](const Sent& s) { return s.statement->sure; });
    for (std::size_t from = 0; from < round.size(); from += kPipelineChunk) {
      std::size_t to = std::min(round.size(), from + kPipelineChunk);
      for (std::size_t k = from; k < to; ++k)
        if (!writer_.send(round[k].statement->sql, round[k].statement->params)) return abandon();
      if (!(last && to == round.size() ? end() : writer_.flush())) return abandon();
      for (std::size_t k = from; k < to; ++k) {
        Result r = writer_.next();
        Statement& st = *round[k].statement;
        std::vector<Statement> ignored;
        auto& added = round[k].write == kOwn ? ignored : then[round[k].write];
        if (!(st.check ? st.check(r, error, added) : result_ok(r, error))) return abandon();
      }
    }
    round.clear();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (then[i].empty()) continue;
      later.push_back(std::move(then[i]));
      then[i].clear();
      for (Statement& st : later.back()) round.push_back({&st, i});
    }
  }
  if (!ended && !end()) return abandon();
  if (notifying) writer_.next();  // a hint: polling is the mechanism
  Result r = writer_.next();
  bool committed = r.ok() && r.command() == "COMMIT";
  if (!committed) error = r.ok() ? "the transaction was rolled back" : r.error();
  writer_.leave();
  if (committed) return QuickOutcome::committed;
  if (writer_.good()) {
    roll_back();
    return QuickOutcome::write_failed;
  }
  return QuickOutcome::unknown;
}

std::vector<std::string> PostgresJournal::commit_careful(
    const std::vector<GroupCommit::Apply*>& batch) {
  std::vector<std::string> results(batch.size());
  std::string error;
  forget_notify();
  bool ok = writer_.ensure(error) && writer_.exec("BEGIN", error);
  // storage.fsync: false acknowledges before the server's WAL is flushed.
  if (ok && !options_.fsync_each_commit)
    ok = writer_.exec("SET LOCAL synchronous_commit = off", error);
  // One write alone needs no savepoint: its failure rolls the transaction back.
  const bool savepoints = batch.size() > 1;
  bool failed_alone = false;
  for (std::size_t i = 0; ok && i < batch.size(); ++i) {
    if (savepoints && !writer_.exec("SAVEPOINT write", error)) {
      ok = false;
      break;
    }
    std::string write_error;
    bool applied = (*batch[i])(write_error);
    if (!applied) {
      results[i] = write_error.empty() ? "write failed" : write_error;
      if (!writer_.good()) {  // the connection is gone, and the transaction with it
        ok = false;
        error = results[i];
        break;
      }
      if (!savepoints) {
        failed_alone = true;
        break;
      }
      if (!writer_.exec("ROLLBACK TO SAVEPOINT write", error)) {
        ok = false;
        break;
      }
    }
    if (savepoints && !writer_.exec("RELEASE SAVEPOINT write", error)) ok = false;
  }
  auto started = std::chrono::steady_clock::now();
  if (ok && failed_alone) {
    forget_notify();
    std::string ignored;
    writer_.exec("ROLLBACK", ignored);
    return results;
  }
  if (ok) send_notify();
  forget_notify();
  if (ok) {
    Result r = writer_.exec("COMMIT");
    // COMMIT of a transaction that failed answers ROLLBACK: nothing of it is stored.
    if (!r.ok() || r.command() != "COMMIT") {
      ok = false;
      error = r.ok() ? "the transaction was rolled back" : r.error();
    }
  }
  last_commit_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
  if (!ok) {
    if (writer_.transaction() != PQTRANS_IDLE && writer_.good()) {
      std::string ignored;
      writer_.exec("ROLLBACK", ignored);
    }
    if (error.empty()) error = "commit failed";
    for (auto& r : results) r = error;
    note_health(false, error);
  } else {
    ++commits_;
    if (std::none_of(results.begin(), results.end(),
                     [](const std::string& r) { return !r.empty(); }))
      note_health(true, {});
  }
  return results;
}

// Inserts `stored` at the next position of its call and sets its seq and public ID.
bool PostgresJournal::insert_event(StoredEvent& stored, std::string& e) {
  Result r = writer_.run(
      "WITH pos AS (INSERT INTO call_positions (call_id, last_pos) VALUES ($1, 1) "
      "ON CONFLICT (call_id) DO UPDATE SET last_pos = call_positions.last_pos + 1 "
      "RETURNING last_pos) "
      "INSERT INTO events (call_id, call_pos, event, body, received_at, state, finished_at) "
      "SELECT $1, pos.last_pos, $2, $3, $4::bigint, $5::text, "
      "CASE WHEN $5::text = 'pending' THEN NULL ELSE $4::bigint END FROM pos RETURNING seq",
      Params()
          .add(stored.call_id)
          .add(stored.event)
          .add(stored.body)
          .add(stored.received_at_ms)
          .add(to_string(stored.state)));
  if (!r.ok() || r.rows() != 1) {
    e = r.ok() ? "no event stored" : r.error();
    return false;
  }
  stored.seq = r.integer(0, 0);
  stored.event_id = event_id_of(stored.seq);
  return true;
}

std::optional<StoredEvent> PostgresJournal::append_finished_event(
    const std::string& call_id, const std::string& event, const std::string& body,
    const std::string& defaults_json, const std::string& vars_json, std::string& error) {
  StoredEvent stored = new_event(call_id, event, body, EventState::done);
  bool ok = group_->submit(
      [&](std::string& e) {
        if (!insert_event(stored, e)) return false;
        // insert_event locked the call's position row: no other transaction changes the
        // call's variables between this read and the write below.
        Result current =
            writer_.run("SELECT vars FROM calls WHERE call_id = $1", Params().add(call_id));
        if (!current.ok()) {
          e = current.error();
          return false;
        }
        std::string stored_vars = current.rows() ? current.text(0, 0) : "{}";
        auto vars = pg::merged({&defaults_json, &stored_vars, &vars_json}, e);
        if (!vars) return false;
        return writer_.run(
            "INSERT INTO calls (call_id, vars, updated_at) VALUES ($1, $2, $3::bigint) "
            "ON CONFLICT (call_id) DO UPDATE SET vars = excluded.vars, "
            "updated_at = excluded.updated_at",
            Params().add(call_id).add(*vars).add(stored.received_at_ms), e);
      },
      error);
  if (!ok) return std::nullopt;
  return stored;
}

// One statement for both: bridge/journal/postgres/cluster.cc.
GroupCommit::Apply PostgresJournal::write_action(ActionRecord a) {
  return write_action_fenced(std::move(a), Fence{});
}

GroupCommit::Apply PostgresJournal::write_kv(std::string ns, std::string key, std::string value) {
  static const std::string sql =
      "INSERT INTO kv (ns, key, value, updated_at) VALUES ($1, $2, $3, $4::bigint) "
      "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, "
      "updated_at = excluded.updated_at";
  return pipelined({{sql, Params().add(ns).add(key).add(value).add(now_ms()), nullptr, true}});
}

bool PostgresJournal::write_kv_if(const std::string& ns, const std::string& key,
                                  const std::string& value,
                                  const std::optional<std::string>& expected, bool& stored,
                                  std::string& error) {
  // A concurrent writer of the same key on another node makes these wait for its transaction,
  // then see its outcome: the insert does nothing, the update matches no row.
  pg::Result r = expected ? writer_.run(
                                "UPDATE kv SET value = $1, updated_at = $2::bigint "
                                "WHERE ns = $3 AND key = $4 AND value = $5",
                                Params().add(value).add(now_ms()).add(ns).add(key).add(*expected))
                          : writer_.run(
                                "INSERT INTO kv (ns, key, value, updated_at) "
                                "VALUES ($1, $2, $3, $4::bigint) "
                                "ON CONFLICT (ns, key) DO NOTHING",
                                Params().add(ns).add(key).add(value).add(now_ms()));
  if (!r.ok()) {
    error = r.error();
    return false;
  }
  stored = r.affected() == 1;
  return true;
}

bool PostgresJournal::finish_event(std::int64_t seq, EventState state, const std::string& call_id,
                                   const std::string& vars_json, std::string& error) {
  return group_->submit(write_finish(seq, state, call_id, vars_json, Fence{}), error);
}

std::vector<StoredEvent> PostgresJournal::pending_events() {
  return read(
      [](Connection& db) {
        return read_events(db.run(std::string("SELECT ") + kEventColumns +
                                  " FROM events WHERE state = 'pending' ORDER BY seq"));
      },
      std::vector<StoredEvent>{});
}

std::vector<StoredEvent> PostgresJournal::pending_events_of(const std::string& call_id) {
  return read(
      [&](Connection& db) {
        return read_events(db.run(std::string("SELECT ") + kEventColumns +
                                      " FROM events WHERE call_id = $1 AND state = 'pending' "
                                      "ORDER BY call_pos",
                                  Params().add(call_id)));
      },
      std::vector<StoredEvent>{});
}

std::vector<ActionRecord> PostgresJournal::actions_of(std::int64_t event_seq) {
  std::vector<ActionRecord> out;
  std::string error;
  read_actions_of(event_seq, out, error);
  return out;
}

bool PostgresJournal::read_actions_of(std::int64_t event_seq, std::vector<ActionRecord>& out,
                                      std::string& error) {
  std::lock_guard lock(read_mutex_);
  out.clear();
  if (!reader_.ensure(error)) return false;
  Result r = reader_.run(std::string("SELECT ") + kActionColumns +
                             " FROM actions WHERE event_seq = $1::bigint ORDER BY id",
                         Params().add(event_seq));
  if (!r.ok()) {
    error = r.error();
    return false;
  }
  out = read_actions(r);
  return true;
}

std::optional<std::string> PostgresJournal::call_vars(const std::string& call_id) {
  std::optional<std::string> vars;
  std::string error;
  read_call_vars(call_id, vars, error);
  return vars;
}

bool PostgresJournal::read_call_vars(const std::string& call_id, std::optional<std::string>& vars,
                                     std::string& error) {
  std::lock_guard lock(read_mutex_);
  vars.reset();
  if (!reader_.ensure(error)) return false;
  Result r = reader_.run("SELECT vars FROM calls WHERE call_id = $1", Params().add(call_id));
  if (!r.ok()) {
    error = r.error();
    return false;
  }
  if (r.rows() == 1) vars = r.text(0, 0);
  return true;
}

std::vector<StoredEvent> PostgresJournal::events_of_call(const std::string& call_id) {
  return read(
      [&](Connection& db) {
        return read_events(db.run(std::string("SELECT ") + kEventColumns +
                                      " FROM events WHERE call_id = $1 ORDER BY call_pos",
                                  Params().add(call_id)));
      },
      std::vector<StoredEvent>{});
}

std::optional<StoredEvent> PostgresJournal::event(std::int64_t seq) {
  return read(
      [&](Connection& db) -> std::optional<StoredEvent> {
        Result r =
            db.run(std::string("SELECT ") + kEventColumns + " FROM events WHERE seq = $1::bigint",
                   Params().add(seq));
        if (r.rows() == 1) return read_event(r, 0);
        return std::nullopt;
      },
      std::optional<StoredEvent>{});
}

std::vector<CallSummary> PostgresJournal::recent_calls(std::size_t limit, bool failures_only) {
  static const std::string failed =
      "COUNT(a.rule) FILTER (WHERE a.state IN " + pg::failure_states_sql() + ")";
  std::string sql =
      "SELECT e.call_id, MIN(e.received_at), MAX(e.received_at), COUNT(DISTINCT e.seq), " + failed +
      ", COUNT(DISTINCT e.seq) FILTER (WHERE e.state = 'pending') "
      "FROM events e LEFT JOIN actions a ON a.event_seq = e.seq GROUP BY e.call_id ";
  if (failures_only) sql += "HAVING " + failed + " > 0 ";
  sql += "ORDER BY MAX(e.seq) DESC LIMIT $1::bigint";
  return read(
      [&](Connection& db) {
        std::vector<CallSummary> out;
        Result r = db.run(sql, Params().add(static_cast<std::int64_t>(limit)));
        for (int i = 0; i < r.rows(); ++i) {
          CallSummary c;
          c.call_id = r.text(i, 0);
          c.first_at_ms = r.integer(i, 1);
          c.last_at_ms = r.integer(i, 2);
          c.events = static_cast<int>(r.integer(i, 3));
          c.failed_actions = static_cast<int>(r.integer(i, 4));
          c.pending_events = static_cast<int>(r.integer(i, 5));
          out.push_back(c);
        }
        return out;
      },
      std::vector<CallSummary>{});
}

std::vector<ActionRecord> PostgresJournal::dead_actions(std::size_t limit) {
  return read(
      [&](Connection& db) {
        return read_actions(
            db.run(std::string("SELECT ") + kActionColumns +
                       " FROM actions WHERE state IN ('dead', 'unknown') ORDER BY id DESC "
                       "LIMIT $1::bigint",
                   Params().add(static_cast<std::int64_t>(limit))));
      },
      std::vector<ActionRecord>{});
}

// Each step of kPruneSteps, on the writer thread inside prune's transaction. The calls chosen
// by select_calls are in the temporary table old_calls (this connection's, emptied at commit).
bool PostgresJournal::prune_step(PruneStep step, PruneRun& run, std::string& e) {
  constexpr const char* kOldCalls = "(SELECT call_id FROM old_calls)";
  switch (step) {
    case PruneStep::select_calls: {
      if (!writer_.exec("CREATE TEMP TABLE IF NOT EXISTS old_calls (call_id TEXT PRIMARY KEY) "
                        "ON COMMIT DELETE ROWS; DELETE FROM old_calls",
                        e))
        return false;
      Result r = writer_.run(
          "INSERT INTO old_calls SELECT call_id FROM events GROUP BY call_id "
          "HAVING MAX(received_at) < $1::bigint AND COUNT(*) FILTER (WHERE state = 'pending') = 0",
          Params().add(run.cutoff_ms));
      if (!r.ok()) {
        e = r.error();
        return false;
      }
      run.calls = static_cast<std::size_t>(r.affected());
      return true;
    }
    case PruneStep::delete_actions:
      return writer_.run(std::string("DELETE FROM actions WHERE event_seq IN (SELECT seq FROM "
                                     "events WHERE call_id IN ") +
                             kOldCalls + ")",
                         {}, e);
    case PruneStep::delete_event_keys: {
      // Each event's keys are a range of the primary key: one indexed delete per event.
      std::vector<std::int64_t> seqs;
      {
        Result r = writer_.run(std::string("SELECT seq FROM events WHERE call_id IN ") + kOldCalls);
        if (!r.ok()) {
          e = r.error();
          return false;
        }
        for (int i = 0; i < r.rows(); ++i) seqs.push_back(r.integer(i, 0));
      }
      for (const EventScopedKeys& scoped : options_.event_scoped) {
        for (std::int64_t seq : seqs) {
          std::string prefix = scoped.key_prefix(event_id_of(seq));
          if (prefix.empty()) continue;  // would be the whole namespace
          std::string end = prefix_end(prefix);
          bool ok = end.empty()
                        ? writer_.run(
                              "DELETE FROM kv WHERE ns = $1 AND key >= $2 AND "
                              "starts_with(key, $2)",
                              Params().add(scoped.ns).add(prefix), e)
                        : writer_.run("DELETE FROM kv WHERE ns = $1 AND key >= $2 AND key < $3",
                                      Params().add(scoped.ns).add(prefix).add(end), e);
          if (!ok) return false;
        }
      }
      return true;
    }
    case PruneStep::delete_events:
      return writer_.run(std::string("DELETE FROM events WHERE call_id IN ") + kOldCalls, {}, e);
    case PruneStep::delete_calls:
      // The call's variables, its position counter (a later event starts it again) and its
      // lease's row once it expired before the cutoff (no node can still hold an epoch of it).
      return writer_.run(std::string("DELETE FROM calls WHERE call_id IN ") + kOldCalls, {}, e) &&
             writer_.run(std::string("DELETE FROM call_positions WHERE call_id IN ") + kOldCalls,
                         {}, e) &&
             writer_.run(
                 "DELETE FROM leases WHERE name IN (SELECT 'call:' || call_id FROM old_calls) "
                 "AND expires_at < $1::bigint",
                 Params().add(run.cutoff_ms), e);
  }
  e = "unknown prune step";
  return false;
}

bool PostgresJournal::kv_erase(std::string_view ns, std::string_view key, std::string& error) {
  return group_->submit(
      [&](std::string& e) {
        return writer_.run("DELETE FROM kv WHERE ns = $1 AND key = $2", Params().add(ns).add(key),
                           e);
      },
      error);
}

std::optional<std::string> PostgresJournal::kv_get(std::string_view ns, std::string_view key) {
  return read(
      [&](Connection& db) -> std::optional<std::string> {
        Result r =
            db.run("SELECT value FROM kv WHERE ns = $1 AND key = $2", Params().add(ns).add(key));
        if (r.rows() == 1) return r.text(0, 0);
        return std::nullopt;
      },
      std::optional<std::string>{});
}

std::vector<std::pair<std::string, std::string>> PostgresJournal::kv_scan(std::string_view ns,
                                                                          std::string_view prefix) {
  std::string end = prefix_end(prefix);
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  return read(
      [&](Connection& db) {
        Result r = end.empty()
                       ? db.run(
                             "SELECT key, value FROM kv WHERE ns = $1 AND key >= $2 AND "
                             "starts_with(key, $2) ORDER BY key",
                             Params().add(ns).add(prefix))
                       : db.run(
                             "SELECT key, value FROM kv WHERE ns = $1 AND key >= $2 AND key < $3 "
                             "ORDER BY key",
                             Params().add(ns).add(prefix).add(end));
        Pairs out;
        for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.text(i, 0), r.text(i, 1));
        return out;
      },
      Pairs{});
}

}  // namespace callbridge::bridge
