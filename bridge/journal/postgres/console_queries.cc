// The queries behind the web console on PostgreSQL (bridge/console_routes.cc), with the results
// of the SQLite journal's (bridge/journal/sqlite/console_queries.cc): calls filtered and paged
// by key, dead letters, counts and latencies for the overview. Every value is a bound parameter;
// the indexes are schema version 2's (schema.cc).
#include <algorithm>
#include <string>
#include <vector>

#include "bridge/journal/postgres/postgres_journal.h"

namespace callbridge::bridge {

using pg::Connection;
using pg::Params;
using pg::Result;

namespace {

// A call's outcome as CallQuery::outcome, from its pending events and its actions' states: a
// pending event makes it running, then dead outranks unknown, unknown outranks failed. Computed
// for the calls of `page` only (see search_calls).
constexpr const char* kCallRows = R"sql(
SELECT e.seq, e.call_id, COALESCE(e.body::json ->> 'tel', '') AS tel, e.event, e.received_at,
  c.last_at, c.events,
  CASE WHEN c.pending > 0 THEN 'running'
       WHEN s.dead THEN 'dead'
       WHEN s.unknown THEN 'unknown'
       WHEN s.failed THEN 'failed'
       ELSE 'ok' END AS outcome
FROM page p JOIN events e ON e.seq = p.seq
CROSS JOIN LATERAL (
  SELECT MAX(x.received_at) AS last_at, COUNT(*) AS events,
         COUNT(*) FILTER (WHERE x.state = 'pending') AS pending
  FROM events x WHERE x.call_id = e.call_id) c
CROSS JOIN LATERAL (
  SELECT COALESCE(bool_or(a.state = 'dead'), false) AS dead,
         COALESCE(bool_or(a.state = 'unknown'), false) AS unknown,
         COALESCE(bool_or(a.state IN ('failed', 'http_error')), false) AS failed
  FROM events x JOIN actions a ON a.event_seq = x.seq WHERE x.call_id = e.call_id) s)sql";

}  // namespace

std::vector<Journal::CallRow> PostgresJournal::search_calls(const CallQuery& query) {
  // Only the filters that are set, so that each combination is planned for what it asks (a
  // generic plan of "$n = '' OR ..." scans); every value is still a parameter.
  std::string where;
  Params params;
  auto param = [&](auto value, const char* type) {
    params.add(value);
    return "$" + std::to_string(params.values().size()) + "::" + type;
  };
  if (query.before_seq > 0) where += " AND e.seq < " + param(query.before_seq, "bigint");
  if (query.from_ms > 0) where += " AND e.received_at >= " + param(query.from_ms, "bigint");
  if (query.to_ms > 0) where += " AND e.received_at < " + param(query.to_ms, "bigint");
  if (!query.phone_key.empty())
    where +=
        " AND e.call_id IN (SELECT p.call_id FROM events p WHERE callbridge_tel_key(p.body) = " +
        param(query.phone_key, "text") + ")";
  if (!query.call_id.empty()) where += " AND e.call_id = " + param(query.call_id, "text");
  if (!query.event.empty())
    where += " AND EXISTS (SELECT 1 FROM events x WHERE x.call_id = e.call_id AND x.event = " +
             param(query.event, "text") + ")";
  if (!query.rule.empty())
    where +=
        " AND EXISTS (SELECT 1 FROM events x JOIN actions a ON a.event_seq = x.seq WHERE "
        "x.call_id = e.call_id AND a.rule = " +
        param(query.rule, "text") + ")";
  // Failed, dead and unknown calls are narrowed to those with such an action (index
  // actions_by_state_seq), running ones to those with a pending event (events_pending); the
  // exact outcome is decided by the outer query.
  const std::string& outcome = query.outcome;
  std::string states;
  if (outcome == "dead" || outcome == "unknown") states = param(outcome, "text");
  if (outcome == "failed") states = "'failed', 'http_error'";
  if (!states.empty())
    where +=
        " AND e.call_id IN (SELECT x.call_id FROM actions a JOIN events x ON x.seq = "
        "a.event_seq WHERE a.state IN (" +
        states + "))";
  if (outcome == "running")
    where += " AND e.call_id IN (SELECT call_id FROM events WHERE state = 'pending')";
  // The page's calls first (a call's row is its first event, the lowest seq of its call),
  // then the columns of those only. With an outcome the page is the narrowed candidates and
  // the outer query keeps the first `limit` of the exact outcome.
  std::size_t limit = std::clamp<std::size_t>(query.limit, 1, 500);
  std::string sql =
      "WITH page AS (SELECT e.seq FROM events e WHERE e.seq = (SELECT MIN(f.seq) FROM events f "
      "WHERE f.call_id = e.call_id)" +
      where + " ORDER BY e.seq DESC";
  if (outcome.empty()) sql += " LIMIT " + param(static_cast<std::int64_t>(limit), "bigint");
  sql += ") SELECT * FROM (" + std::string(kCallRows) + ") q";
  if (!outcome.empty()) sql += " WHERE q.outcome = " + param(outcome, "text");
  sql += " ORDER BY q.seq DESC LIMIT " + param(static_cast<std::int64_t>(limit), "bigint");
  return read(
      [&](Connection& db) {
        std::vector<CallRow> out;
        Result r = db.run(sql, params);
        for (int i = 0; i < r.rows(); ++i) {
          CallRow row;
          row.seq = r.integer(i, 0);
          row.call_id = r.text(i, 1);
          row.tel = r.text(i, 2);
          row.event = r.text(i, 3);
          row.first_at_ms = r.integer(i, 4);
          row.last_at_ms = r.integer(i, 5);
          row.events = static_cast<int>(r.integer(i, 6));
          row.outcome = r.text(i, 7);
          out.push_back(std::move(row));
        }
        return out;
      },
      std::vector<CallRow>{});
}

std::vector<Journal::FailureRow> PostgresJournal::failures(const std::string& rule,
                                                           std::int64_t since_ms,
                                                           std::int64_t before_rowid,
                                                           std::size_t limit) {
  // The action's key (Journal::FailureRow::rowid) is the actions table's identity column.
  static const std::string sql =
      "SELECT a.id, 'ev-' || e.seq, e.call_id, e.event, a.event_seq, a.rule, a.attempt, "
      "a.state, a.started_at, a.finished_at, a.gate, a.request, a.status, a.latency_us, "
      "a.extracted, a.error, a.response FROM actions a JOIN events e ON e.seq = a.event_seq "
      "WHERE a.state IN ('dead', 'unknown') AND ($1::text = '' OR a.rule = $1::text) "
      "AND ($2::bigint = 0 OR e.received_at >= $2::bigint) "
      "AND ($3::bigint = 0 OR a.id < $3::bigint) ORDER BY a.id DESC LIMIT $4::bigint";
  return read(
      [&](Connection& db) {
        std::vector<FailureRow> out;
        Result r = db.run(
            sql, Params()
                     .add(rule)
                     .add(since_ms)
                     .add(before_rowid)
                     .add(static_cast<std::int64_t>(std::clamp<std::size_t>(limit, 1, 100000))));
        for (int i = 0; i < r.rows(); ++i) {
          FailureRow row;
          row.rowid = r.integer(i, 0);
          row.event_id = r.text(i, 1);
          row.call_id = r.text(i, 2);
          row.event = r.text(i, 3);
          row.action.event_seq = r.integer(i, 4);
          row.action.rule = r.text(i, 5);
          row.action.attempt = static_cast<int>(r.integer(i, 6));
          row.action.state = action_state_from(r.text(i, 7)).value_or(ActionState::failed);
          row.action.started_at_ms = r.integer(i, 8);
          row.action.finished_at_ms = r.integer(i, 9);
          row.action.gate = r.text(i, 10);
          row.action.request = r.text(i, 11);
          row.action.status = static_cast<int>(r.integer(i, 12));
          row.action.latency_us = r.integer(i, 13);
          row.action.extracted = r.text(i, 14);
          row.action.error = r.text(i, 15);
          row.action.response = r.text(i, 16);
          out.push_back(std::move(row));
        }
        return out;
      },
      std::vector<FailureRow>{});
}

std::vector<std::pair<std::string, std::int64_t>> PostgresJournal::action_counts(
    std::int64_t since_ms) {
  // States compare bytewise, as SQLite orders them.
  return read(
      [&](Connection& db) {
        std::vector<std::pair<std::string, std::int64_t>> out;
        Result r = db.run(
            "SELECT a.state, COUNT(*) FROM events e JOIN actions a ON a.event_seq = e.seq "
            "WHERE e.received_at >= $1::bigint GROUP BY a.state ORDER BY a.state COLLATE \"C\"",
            Params().add(since_ms));
        for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.text(i, 0), r.integer(i, 1));
        return out;
      },
      std::vector<std::pair<std::string, std::int64_t>>{});
}

std::vector<std::pair<std::int64_t, std::int64_t>> PostgresJournal::events_per_minute(
    std::int64_t since_ms) {
  return read(
      [&](Connection& db) {
        std::vector<std::pair<std::int64_t, std::int64_t>> out;
        Result r = db.run(
            "SELECT received_at / 60000, COUNT(*) FROM events WHERE received_at >= $1::bigint "
            "GROUP BY received_at / 60000 ORDER BY 1",
            Params().add(since_ms));
        for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.integer(i, 0) * 60, r.integer(i, 1));
        return out;
      },
      std::vector<std::pair<std::int64_t, std::int64_t>>{});
}

std::vector<std::int64_t> PostgresJournal::action_latencies(std::int64_t since_ms,
                                                            std::size_t limit) {
  return read(
      [&](Connection& db) {
        std::vector<std::int64_t> out;
        Result r = db.run(
            "SELECT a.latency_us FROM events e JOIN actions a ON a.event_seq = e.seq "
            "WHERE e.received_at >= $1::bigint AND a.state NOT IN ('started', 'skipped') "
            "ORDER BY a.latency_us LIMIT $2::bigint",
            Params().add(since_ms).add(static_cast<std::int64_t>(limit)));
        for (int i = 0; i < r.rows(); ++i) out.push_back(r.integer(i, 0));
        return out;
      },
      std::vector<std::int64_t>{});
}

}  // namespace callbridge::bridge
