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
// pending event makes it running, then dead outranks unknown, unknown outranks failed.
constexpr const char* kCallRows = R"sql(
SELECT e.seq, e.call_id, COALESCE(e.body::json ->> 'tel', '') AS tel, e.event, e.received_at,
  c.last_at, c.events,
  CASE WHEN c.pending > 0 THEN 'running'
       WHEN s.dead THEN 'dead'
       WHEN s.unknown THEN 'unknown'
       WHEN s.failed THEN 'failed'
       ELSE 'ok' END AS outcome
FROM events e
CROSS JOIN LATERAL (
  SELECT MAX(x.received_at) AS last_at, COUNT(*) AS events,
         COUNT(*) FILTER (WHERE x.state = 'pending') AS pending
  FROM events x WHERE x.call_id = e.call_id) c
CROSS JOIN LATERAL (
  SELECT COALESCE(bool_or(a.state = 'dead'), false) AS dead,
         COALESCE(bool_or(a.state = 'unknown'), false) AS unknown,
         COALESCE(bool_or(a.state IN ('failed', 'http_error')), false) AS failed
  FROM events x JOIN actions a ON a.event_seq = x.seq WHERE x.call_id = e.call_id) s
WHERE ($1::bigint = 0 OR e.seq < $1::bigint)
  AND NOT EXISTS (SELECT 1 FROM events f WHERE f.call_id = e.call_id AND f.seq < e.seq)
  AND ($2::bigint = 0 OR e.received_at >= $2::bigint)
  AND ($3::bigint = 0 OR e.received_at < $3::bigint)
  AND ($4::text = '' OR e.call_id IN
       (SELECT p.call_id FROM events p WHERE callbridge_tel_key(p.body) = $4::text))
  AND ($5::text = '' OR e.call_id = $5::text)
  AND ($6::text = '' OR EXISTS
       (SELECT 1 FROM events x WHERE x.call_id = e.call_id AND x.event = $6::text))
  AND ($7::text = '' OR EXISTS
       (SELECT 1 FROM events x JOIN actions a ON a.event_seq = x.seq
        WHERE x.call_id = e.call_id AND a.rule = $7::text))
)sql";

}  // namespace

std::vector<Journal::CallRow> PostgresJournal::search_calls(const CallQuery& query) {
  static const std::string sql = std::string("SELECT * FROM (") + kCallRows +
                                 ") q WHERE ($8::text = '' OR q.outcome = $8::text) "
                                 "ORDER BY q.seq DESC LIMIT $9::bigint";
  std::size_t limit = std::clamp<std::size_t>(query.limit, 1, 500);
  return read(
      [&](Connection& db) {
        std::vector<CallRow> out;
        Result r = db.run(sql, Params()
                                   .add(query.before_seq)
                                   .add(query.from_ms)
                                   .add(query.to_ms)
                                   .add(query.phone_key)
                                   .add(query.call_id)
                                   .add(query.event)
                                   .add(query.rule)
                                   .add(query.outcome)
                                   .add(static_cast<std::int64_t>(limit)));
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
      "a.extracted, a.error FROM actions a JOIN events e ON e.seq = a.event_seq "
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
