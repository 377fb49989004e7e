// Cluster mode on PostgreSQL (journal.h "Cluster mode", docs/cluster.md): an event's append that
// also takes its call's lease in the same statement, fenced writes of a call's state, what a
// node's poller reads, and LISTEN/NOTIFY as a hint.
#include <poll.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "bridge/journal/postgres/postgres_journal.h"

namespace callbridge::bridge {

using pg::Connection;
using pg::Params;
using pg::Result;

namespace {

// The channel nodes LISTEN on; a payload is the storing node's owner, then call IDs, one a
// line ("*" instead of the IDs when they do not fit).
constexpr const char* kChannel = "callbridge_events";
// NOTIFY payloads must stay under 8000 bytes.
constexpr std::size_t kMaxPayload = 7000;

// The parameters of both appends: $1 call, $2 event, $3 body, $4 received at, $5 owner, $6 lease.
Params append_params(const StoredEvent& event, std::string_view owner,
                     std::chrono::milliseconds ttl) {
  Params params;
  params.add(event.call_id)
      .add(event.event)
      .add(event.body)
      .add(event.received_at_ms)
      .add(owner)
      .add(static_cast<std::int64_t>(ttl.count()));
  return params;
}

// The first columns both appends return: seq, call_pos, the lease's epoch (null when another node
// holds the call) and the first earlier pending event of the call.
void read_appended(const Result& r, LeasedEvent& out) {
  out.event.seq = r.integer(0, 0);
  out.event.event_id = event_id_of(out.event.seq);
  out.event.call_pos = r.integer(0, 1);
  out.epoch.reset();
  if (!r.null(0, 2)) out.epoch = r.integer(0, 2);
  out.earlier_pending = r.integer(0, 3);
}

}  // namespace

std::optional<LeasedEvent> PostgresJournal::append_event_leased(
    const std::string& call_id, const std::string& event, const std::string& body,
    std::string_view owner, std::chrono::milliseconds ttl, std::string& error) {
  LeasedEvent out;
  out.event = new_event(call_id, event, body, EventState::pending);
  // One statement: the call's next position, the event, the call's lease when it is free or
  // this node's, and the first earlier pending event of the call (read after the position's
  // row lock, see callbridge_first_pending).
  static const std::string sql =
      "WITH pos AS (INSERT INTO call_positions (call_id, last_pos) VALUES ($1, 1) "
      "ON CONFLICT (call_id) DO UPDATE SET last_pos = call_positions.last_pos + 1 "
      "RETURNING last_pos), "
      "ev AS (INSERT INTO events (call_id, call_pos, event, body, received_at, state) "
      "SELECT $1, pos.last_pos, $2, $3, $4::bigint, 'pending' FROM pos RETURNING seq, call_pos), "
      "lease AS (INSERT INTO leases AS l (name, owner, epoch, expires_at) "
      "VALUES ('call:' || $1, $5, 1, callbridge_now_ms() + $6::bigint) "
      "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
      "epoch = CASE WHEN l.owner = excluded.owner AND l.expires_at > callbridge_now_ms() "
      "THEN l.epoch ELSE l.epoch + 1 END, expires_at = excluded.expires_at "
      "WHERE l.owner = excluded.owner OR l.expires_at <= callbridge_now_ms() RETURNING epoch) "
      "SELECT ev.seq, ev.call_pos, (SELECT epoch FROM lease), "
      "callbridge_first_pending($1, ev.call_pos) FROM ev";
  auto stored = [&](const Result& r, std::string& e, std::vector<Statement>&) {
    if (!r.ok() || r.rows() != 1) {
      e = r.ok() ? "no event stored" : r.error();
      return false;
    }
    read_appended(r, out);
    // Another node holds the call: it learns of the event from this batch's NOTIFY.
    if (!out.epoch) note_for_others(owner, call_id);
    return true;
  };
  bool ok = group_->submit(pipelined({{sql, append_params(out.event, owner, ttl), stored}}), error);
  if (!ok) return std::nullopt;
  return out;
}

std::optional<LeasedEvent> PostgresJournal::append_idle_event(
    const std::string& call_id, const std::string& event, const std::string& body,
    const std::string& defaults_json, const std::string& vars_json, std::string_view owner,
    std::chrono::milliseconds ttl, std::string& error) {
  LeasedEvent out;
  out.event = new_event(call_id, event, body, EventState::pending);
  // The call's next position (its row stays locked until commit), whether an earlier event is
  // pending (read after that lock), the event finished or pending accordingly, and when
  // pending the call's lease as append_event_leased takes it.
  static const std::string sql =
      "WITH pos AS (INSERT INTO call_positions (call_id, last_pos) VALUES ($1, 1) "
      "ON CONFLICT (call_id) DO UPDATE SET last_pos = call_positions.last_pos + 1 "
      "RETURNING last_pos), "
      "earlier AS (SELECT last_pos, callbridge_first_pending($1, last_pos) AS first FROM pos), "
      "ev AS (INSERT INTO events (call_id, call_pos, event, body, received_at, state, "
      "finished_at) SELECT $1, last_pos, $2, $3, $4::bigint, "
      "CASE WHEN first IS NULL THEN 'done' ELSE 'pending' END, "
      "CASE WHEN first IS NULL THEN $4::bigint END FROM earlier RETURNING seq, call_pos, state), "
      "lease AS (INSERT INTO leases AS l (name, owner, epoch, expires_at) "
      "SELECT 'call:' || $1, $5, 1, callbridge_now_ms() + $6::bigint FROM earlier "
      "WHERE first IS NOT NULL "
      "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
      "epoch = CASE WHEN l.owner = excluded.owner AND l.expires_at > callbridge_now_ms() "
      "THEN l.epoch ELSE l.epoch + 1 END, expires_at = excluded.expires_at "
      "WHERE l.owner = excluded.owner OR l.expires_at <= callbridge_now_ms() RETURNING epoch) "
      "SELECT ev.seq, ev.call_pos, (SELECT epoch FROM lease), earlier.first, ev.state, "
      "CASE WHEN earlier.first IS NULL THEN callbridge_call_vars($1) END FROM ev, earlier";
  // Then, when it was stored finished, the call's variables (read above after the position's
  // lock, with a snapshot of their own), patched.
  static const std::string write_vars =
      "INSERT INTO calls (call_id, vars, updated_at) VALUES ($1, $2, $3::bigint) "
      "ON CONFLICT (call_id) DO UPDATE SET vars = excluded.vars, updated_at = excluded.updated_at";
  auto stored = [&](const Result& r, std::string& e, std::vector<Statement>& then) {
    if (!r.ok() || r.rows() != 1) {
      e = r.ok() ? "no event stored" : r.error();
      return false;
    }
    read_appended(r, out);
    out.event.state = event_state_from(r.text(0, 4)).value_or(EventState::pending);
    if (out.event.state != EventState::pending) {
      std::string stored_vars = r.null(0, 5) ? "{}" : r.text(0, 5);
      auto vars = pg::merged({&defaults_json, &stored_vars, &vars_json}, e);
      if (!vars) return false;
      then.push_back(
          {write_vars, Params().add(call_id).add(*vars).add(out.event.received_at_ms), nullptr});
    } else if (!out.epoch) {
      note_for_others(owner, call_id);  // as in append_event_leased
    }
    return true;
  };
  if (!group_->submit(pipelined({{sql, append_params(out.event, owner, ttl), stored}}), error))
    return std::nullopt;
  return out;
}

// On the writer thread: `call_id` goes into this batch's NOTIFY.
void PostgresJournal::note_for_others(std::string_view owner, std::string_view call_id) {
  if (notify_payload_.empty()) notify_payload_ = std::string(owner);
  if (notify_payload_.size() + call_id.size() + 1 > kMaxPayload) {
    notify_overflow_ = true;
    return;
  }
  notify_payload_ += "\n" + std::string(call_id);
}

// This batch's NOTIFY, taken: false when there is none.
bool PostgresJournal::take_notify(std::string& channel, std::string& payload) {
  if (notify_payload_.empty()) return false;
  channel = kChannel;
  payload = std::move(notify_payload_);
  if (notify_overflow_) payload = payload.substr(0, payload.find('\n')) + "\n*";
  forget_notify();
  return true;
}

// On the writer thread inside the batch's transaction, before COMMIT: at most one NOTIFY per
// batch, delivered at commit. A failure is ignored: polling is the mechanism.
void PostgresJournal::send_notify() {
  std::string channel, payload;
  if (take_notify(channel, payload))
    writer_.run("SELECT pg_notify($1, $2)", Params().add(channel).add(payload));
}

void PostgresJournal::forget_notify() {
  notify_payload_.clear();
  notify_overflow_ = false;
}

std::vector<PendingCall> PostgresJournal::pending_calls(const std::vector<std::string>& only,
                                                        std::size_t limit) {
  static const std::string head =
      "SELECT e.call_id, MAX(e.call_pos), COALESCE(l.owner, ''), COALESCE(l.epoch, 0), "
      "COALESCE(l.expires_at > callbridge_now_ms(), false) FROM events e "
      "LEFT JOIN leases l ON l.name = ('call:' || e.call_id) COLLATE \"C\" "
      "WHERE e.state = 'pending' ";
  static const std::string tail =
      "GROUP BY e.call_id, l.owner, l.epoch, l.expires_at ORDER BY MIN(e.seq) LIMIT $1::bigint";
  static const std::string all = head + tail;
  static const std::string some =
      head + "AND e.call_id IN (SELECT json_array_elements_text($2::json)) " + tail;
  return read(
      [&](Connection& db) {
        Params params;
        params.add(static_cast<std::int64_t>(limit));
        if (!only.empty()) params.add(nlohmann::json(only).dump());
        Result r = db.run(only.empty() ? all : some, params);
        std::vector<PendingCall> out;
        for (int i = 0; i < r.rows(); ++i) {
          PendingCall c;
          c.call_id = r.text(i, 0);
          c.last_pos = r.integer(i, 1);
          if (r.text(i, 4) == "t") {
            c.owner = r.text(i, 2);
            c.epoch = r.integer(i, 3);
          }
          out.push_back(std::move(c));
        }
        return out;
      },
      std::vector<PendingCall>{});
}

GroupCommit::Apply PostgresJournal::write_action_fenced(ActionRecord a, Fence fence) {
  return pipelined({action_statement(a, fence)});
}

PostgresJournal::Statement PostgresJournal::action_statement(const ActionRecord& a,
                                                             const Fence& fence) {
  static const std::string insert =
      "INSERT INTO actions (event_seq, rule, attempt, state, started_at, finished_at, gate, "
      "request, status, latency_us, extracted, error, response) SELECT $1::bigint, $2, "
      "$3::int, $4, $5::bigint, $6::bigint, $7, $8, $9::int, $10::bigint, $11, $12, $13";
  static const std::string replace =
      " ON CONFLICT (event_seq, rule, attempt) DO UPDATE SET state = excluded.state, "
      "started_at = excluded.started_at, finished_at = excluded.finished_at, gate = "
      "excluded.gate, request = excluded.request, status = excluded.status, latency_us = "
      "excluded.latency_us, extracted = excluded.extracted, error = excluded.error, "
      "response = excluded.response";
  static const std::string unfenced = insert + replace;
  static const std::string fenced = insert + " WHERE " + fence_check(14) + replace;
  Params params;
  params.add(a.event_seq)
      .add(a.rule)
      .add(a.attempt)
      .add(to_string(a.state))
      .add(a.started_at_ms)
      .add(a.finished_at_ms)
      .add(a.gate)
      .add(a.request)
      .add(a.status)
      .add(a.latency_us)
      .add(a.extracted)
      .add(a.error)
      .add(a.response);
  bool with_fence = !fence.empty();
  if (with_fence) params.add(fence.lease).add(fence.epoch);
  return {with_fence ? fenced : unfenced, std::move(params),
          [with_fence](const Result& r, std::string& e, std::vector<Statement>&) {
            if (!result_ok(r, e)) return false;
            if (!with_fence || r.affected() == 1) return true;
            e = kLeaseLost;
            return false;
          },
          !with_fence};
}

bool PostgresJournal::record_action_fenced(const ActionRecord& action, const Fence& fence,
                                           std::string& error) {
  if (fence.empty()) return record_action(action, error);
  return group_->submit(write_action_fenced(action, fence), error);
}

void PostgresJournal::record_action_later_fenced(ActionRecord action, Fence fence) {
  if (fence.empty()) return record_action_later(std::move(action));
  group_->submit_later(write_action_fenced(std::move(action), std::move(fence)));
}

bool PostgresJournal::finish_event_fenced(std::int64_t seq, EventState state,
                                          const std::string& call_id, const std::string& vars_json,
                                          const Fence& fence, std::string& error) {
  return group_->submit(write_finish(seq, state, call_id, vars_json, fence), error);
}

// The event's state and the call's variables in one statement; with a fence, neither unless it
// holds (the lease row is locked until commit: the variables are written under the same fence).
GroupCommit::Apply PostgresJournal::write_finish(std::int64_t seq, EventState state,
                                                 const std::string& call_id,
                                                 const std::string& vars_json, const Fence& fence) {
  return pipelined({finish_statement(seq, state, call_id, vars_json, fence)});
}

PostgresJournal::Statement PostgresJournal::finish_statement(std::int64_t seq, EventState state,
                                                             const std::string& call_id,
                                                             const std::string& vars_json,
                                                             const Fence& fence) {
  auto sql = [](bool fenced) {
    return "WITH ev AS (UPDATE events SET state = $1, finished_at = $2::bigint "
           "WHERE seq = $3::bigint" +
           (fenced ? " AND " + fence_check(6) : std::string()) +
           " RETURNING seq), vars AS (INSERT INTO calls (call_id, vars, updated_at) "
           "SELECT $4, $5, $2::bigint" +
           (fenced ? " WHERE EXISTS (SELECT 1 FROM ev)" : std::string()) +
           " "
           "ON CONFLICT (call_id) DO UPDATE SET vars = excluded.vars, "
           "updated_at = excluded.updated_at RETURNING 1) "
           "SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM vars)";
  };
  static const std::string unfenced = sql(false), fenced = sql(true);
  Params params;
  params.add(to_string(state)).add(now_ms()).add(seq).add(call_id).add(vars_json);
  bool with_fence = !fence.empty();
  if (with_fence) params.add(fence.lease).add(fence.epoch);
  return {with_fence ? fenced : unfenced, std::move(params),
          [with_fence](const Result& r, std::string& e, std::vector<Statement>&) {
            if (!result_ok(r, e)) return false;
            if (r.rows() == 1 && r.integer(0, 0) == 1) return true;
            // Unfenced, a missing event is no error (as the plain UPDATE was not).
            if (!with_fence) return true;
            e = kLeaseLost;
            return false;
          },
          !with_fence};
}

// The records and the finish as statements of one write: a record refused by the fence fails
// the whole write (kLeaseLost), which the careful pass of the batch undoes alone.
bool PostgresJournal::record_actions_fenced(const std::vector<ActionRecord>& records,
                                            const Fence& fence, std::string& error) {
  std::vector<Statement> statements;
  for (const ActionRecord& record : records) statements.push_back(action_statement(record, fence));
  return group_->submit(pipelined(std::move(statements)), error);
}

bool PostgresJournal::finish_event_with(const std::vector<ActionRecord>& records, std::int64_t seq,
                                        EventState state, const std::string& call_id,
                                        const std::string& vars_json, const Fence& fence,
                                        std::string& error) {
  std::vector<Statement> statements;
  for (const ActionRecord& record : records) statements.push_back(action_statement(record, fence));
  statements.push_back(finish_statement(seq, state, call_id, vars_json, fence));
  return group_->submit(pipelined(std::move(statements)), error);
}

// Lets the call's lease go unless the call has a pending event (read with a fresh snapshot, so
// an event committed while this statement waited for the lease row counts).
GroupCommit::Apply PostgresJournal::write_release_call(std::string call_id, std::int64_t epoch,
                                                       std::shared_ptr<bool> released) {
  static const std::string sql =
      "UPDATE leases SET expires_at = callbridge_now_ms() WHERE name = 'call:' || $1 AND "
      "epoch = $2::bigint AND expires_at > callbridge_now_ms() AND "
      "callbridge_first_pending($1, 9223372036854775807) IS NULL";
  return pipelined({{sql, Params().add(call_id).add(epoch),
                     [released](const Result& r, std::string& e, std::vector<Statement>&) {
                       if (!result_ok(r, e)) return false;
                       if (released) *released = r.affected() == 1;
                       return true;
                     },
                     true}});
}

bool PostgresJournal::release_call_lease(const std::string& call_id, std::int64_t epoch) {
  std::string error;
  auto released = std::make_shared<bool>(false);
  group_->submit(write_release_call(call_id, epoch, released), error);
  return *released;
}

void PostgresJournal::release_call_lease_later(const std::string& call_id, std::int64_t epoch) {
  group_->submit_later(write_release_call(call_id, epoch, nullptr));
}

std::vector<std::string> PostgresJournal::wait_for_stored_events(
    std::string_view owner, std::chrono::milliseconds timeout) {
  std::lock_guard lock(listen_mutex_);
  std::string error;
  if (!listener_.good()) {
    if (!listener_.open(options_.postgres, error) ||
        !listener_.exec((std::string("LISTEN ") + kChannel).c_str(), error)) {
      std::this_thread::sleep_for(timeout);
      return {};
    }
  }
  std::vector<std::string> calls;
  for (const std::string& payload :
       listener_.wait_notifications(static_cast<int>(timeout.count()))) {
    std::size_t end = payload.find('\n');
    if (end == std::string::npos || payload.compare(0, end, owner) == 0) continue;
    while (end != std::string::npos) {
      std::size_t start = end + 1;
      end = payload.find('\n', start);
      calls.push_back(payload.substr(start, end == std::string::npos ? end : end - start));
    }
  }
  return calls;
}

}  // namespace callbridge::bridge
