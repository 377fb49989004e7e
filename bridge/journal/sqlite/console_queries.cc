// The queries behind the web console (bridge/console_routes.cc): calls filtered and paged by
// key, dead letters, counts and latencies for the overview.
#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "bridge/journal/sqlite/sqlite_journal.h"
#include "bridge/journal/sqlite/tel_key.h"

namespace callbridge::bridge {

using sqlite::Connection;
using sqlite::failure_states_sql;
using sqlite::Statement;

namespace {

std::string call_outcome(std::int64_t pending, const std::string& states) {
  auto has = [&](std::string_view s) {
    std::size_t at = 0;
    while ((at = states.find(s, at)) != std::string::npos) {
      bool starts = at == 0 || states[at - 1] == ',';
      bool ends = at + s.size() == states.size() || states[at + s.size()] == ',';
      if (starts && ends) return true;
      at += s.size();
    }
    return false;
  };
  if (pending > 0) return "running";
  if (has("dead")) return "dead";
  if (has("unknown")) return "unknown";
  if (has("failed") || has("http_error")) return "failed";
  return "ok";
}

}  // namespace

std::vector<Journal::CallRow> SqliteJournal::search_calls(const CallQuery& query) {
  return read([&](Connection& db) {
    std::vector<CallRow> out;
    std::int64_t lo = 0, hi = 0;  // seq bounds of a date range ([lo, hi), 0: open)
    // Events arrive in time order, so a time range is a range of seq; the index on received_at
    // finds its ends and the primary key does the rest.
    auto first_seq_at = [&](std::int64_t ms) -> std::int64_t {
      Statement s(db, "SELECT seq FROM events WHERE received_at >= ? ORDER BY received_at LIMIT 1");
      s.bind(1, ms);
      return s.step() == SQLITE_ROW ? s.integer(0) : -1;
    };
    if (query.from_ms > 0) {
      lo = first_seq_at(query.from_ms);
      if (lo < 0) return out;
    }
    if (query.to_ms > 0) hi = first_seq_at(query.to_ms);  // -1: nothing after, open
    if (hi < 0) hi = 0;

    // The calls of a number, looked up apart: nested in the page's query, the key's expression
    // is deeper than SQLite's parser allows.
    std::string phone_calls = "[";
    if (!query.phone_key.empty()) {
      Statement p(db, "SELECT DISTINCT call_id FROM events WHERE " CALLBRIDGE_TEL_KEY_SQL
                      " = ? LIMIT 100000");
      p.bind(1, query.phone_key);
      while (p.step() == SQLITE_ROW) {
        if (phone_calls.size() > 1) phone_calls += ',';
        phone_calls += '"';
        for (unsigned char c : p.text(0)) {
          if (c == '"' || c == '\\') {
            phone_calls += '\\';
            phone_calls += static_cast<char>(c);
          } else if (c < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
            phone_calls += escaped;
          } else {
            phone_calls += static_cast<char>(c);
          }
        }
        phone_calls += '"';
      }
      if (phone_calls.size() == 1) return out;
    }
    phone_calls += ']';
    // The page's calls first (their first events' seq, newest first), then the columns of
    // those only: SQLite would otherwise compute them for every candidate before sorting.
    std::string page =
        "SELECT e.seq AS seq FROM events e WHERE e.seq < ?1 AND e.seq >= ?2 AND NOT EXISTS "
        "(SELECT 1 FROM events f WHERE f.call_id = e.call_id AND f.seq < e.seq) AND (?4 = 0 OR "
        "+e.received_at >= ?4) AND (?5 = 0 OR +e.received_at < ?5)";
    if (!query.phone_key.empty()) page += " AND e.call_id IN (SELECT value FROM json_each(?6))";
    if (!query.call_id.empty()) page += " AND e.call_id = ?7";
    if (!query.event.empty())
      page += " AND EXISTS (SELECT 1 FROM events x WHERE x.call_id = e.call_id AND x.event = ?8)";
    if (!query.rule.empty())
      page +=
          " AND EXISTS (SELECT 1 FROM events x JOIN actions a ON a.event_seq = x.seq WHERE "
          "x.call_id = e.call_id AND a.rule = ?9)";
    const std::string& outcome = query.outcome;
    // Failed, dead and unknown calls are found from their actions (see candidates below).
    std::vector<std::string> failure_states;
    if (outcome == "dead" || outcome == "unknown") failure_states = {outcome};
    if (outcome == "failed") failure_states = {"http_error", "failed"};
    if (outcome == "running") {
      page += " AND e.call_id IN (SELECT call_id FROM events WHERE state = 'pending')";
    } else if (!failure_states.empty()) {
      page += " AND e.seq IN (SELECT value FROM json_each(?11))";
    } else if (outcome == "ok") {
      page +=
          " AND NOT EXISTS (SELECT 1 FROM events x JOIN actions a ON a.event_seq = x.seq "
          "WHERE x.call_id = e.call_id AND a.state IN " +
          failure_states_sql() +
          ") AND NOT EXISTS (SELECT 1 FROM events x WHERE x.call_id = e.call_id AND x.state "
          "= 'pending')";
    }
    page += " ORDER BY e.seq DESC LIMIT ?10";
    std::string sql =
        "SELECT e.seq, e.call_id, COALESCE(CAST(json_extract(e.body, '$.tel') AS TEXT), ''), "
        "e.event, e.received_at, "
        "(SELECT MAX(x.received_at) FROM events x WHERE x.call_id = e.call_id), "
        "(SELECT COUNT(*) FROM events x WHERE x.call_id = e.call_id), "
        "(SELECT COUNT(*) FROM events x WHERE x.call_id = e.call_id AND x.state = 'pending'), "
        "(SELECT group_concat(DISTINCT a.state) FROM events x JOIN actions a ON a.event_seq = "
        "x.seq WHERE x.call_id = e.call_id) "
        "FROM (" +
        page + ") p JOIN events e ON e.seq = p.seq ORDER BY e.seq DESC";
    std::size_t limit = std::clamp<std::size_t>(query.limit, 1, 500);
    std::int64_t before = query.before_seq;
    // The SQL narrows by outcome; the exact outcome (dead outranks failed, running all) is
    // decided per row, so a batch may come back short and the next one continues from it.
    // The first events (below `upper`, from `lo`) of the newest `limit` calls with an action in
    // one of `failure_states`: each state's actions newest first (index actions_by_state_seq),
    // stopping once an action is older than the limit-th call found, since a call's first
    // event is never newer than its actions. Returns whether there may be more.
    auto candidates = [&](std::int64_t upper, std::string& json, std::int64_t& lowest) {
      std::set<std::int64_t> firsts;  // the newest `limit` ones
      for (const auto& state : failure_states) {
        Statement w(db,
                    "SELECT a.event_seq, (SELECT MIN(f.seq) FROM events f WHERE f.call_id = "
                    "x.call_id) FROM actions a JOIN events x ON x.seq = a.event_seq WHERE "
                    "a.state = ? ORDER BY a.event_seq DESC");
        w.bind(1, state);
        while (w.step() == SQLITE_ROW) {
          if (firsts.size() >= limit && w.integer(0) < *firsts.begin()) break;
          std::int64_t first = w.integer(1);
          if (first >= upper || first < lo) continue;
          firsts.insert(first);
          if (firsts.size() > limit) firsts.erase(firsts.begin());
        }
      }
      json = "[";
      for (auto seq : firsts) json += (json.size() > 1 ? "," : "") + std::to_string(seq);
      json += "]";
      lowest = firsts.empty() ? 0 : *firsts.begin();
      return firsts.size() >= limit;
    };
    while (out.size() < limit) {
      Statement s(db, sql);
      // One range on the primary key: below the page key and the range's end, from its start.
      std::int64_t upper = std::numeric_limits<std::int64_t>::max();
      if (before > 0) upper = before;
      if (hi > 0) upper = std::min(upper, hi);
      s.bind(1, upper).bind(2, lo).bind(4, query.from_ms).bind(5, query.to_ms);
      if (!query.phone_key.empty()) s.bind(6, phone_calls);
      if (!query.call_id.empty()) s.bind(7, query.call_id);
      if (!query.event.empty()) s.bind(8, query.event);
      if (!query.rule.empty()) s.bind(9, query.rule);
      s.bind(10, static_cast<std::int64_t>(limit));
      bool more = true;
      std::int64_t lowest = 0;
      if (!failure_states.empty()) {
        std::string seqs;
        more = candidates(upper, seqs, lowest);
        if (seqs == "[]") break;
        s.bind(11, seqs);
      }
      std::size_t rows = 0;
      while (s.step() == SQLITE_ROW) {
        ++rows;
        CallRow row;
        row.seq = s.integer(0);
        before = row.seq;
        row.call_id = s.text(1);
        row.tel = s.text(2);
        row.event = s.text(3);
        row.first_at_ms = s.integer(4);
        row.last_at_ms = s.integer(5);
        row.events = static_cast<int>(s.integer(6));
        row.outcome = call_outcome(s.integer(7), s.text(8));
        if (!outcome.empty() && row.outcome != outcome) continue;
        if (out.size() < limit) out.push_back(std::move(row));
      }
      if (!failure_states.empty()) {
        // The candidates were the next `limit` calls of those states; others may follow.
        if (!more) break;
        before = lowest;
        continue;
      }
      if (rows < limit) break;
    }
    return out;
  });
}

std::vector<Journal::FailureRow> SqliteJournal::failures(const std::string& rule,
                                                         std::int64_t since_ms,
                                                         std::int64_t before_rowid,
                                                         std::size_t limit) {
  return read([&](Connection& db) {
    std::vector<FailureRow> out;
    std::string sql = "SELECT a.rowid, 'ev-' || e.seq, e.call_id, e.event";
    for (std::string_view column :
         {"event_seq", "rule", "attempt", "state", "started_at", "finished_at", "gate", "request",
          "status", "latency_us", "extracted", "error", "response"})
      sql += ", a." + std::string(column);
    sql +=
        " FROM actions a JOIN events e ON e.seq = a.event_seq WHERE a.state IN ('dead', "
        "'unknown') AND (?1 = '' OR a.rule = ?1) AND (?2 = 0 OR e.received_at >= ?2) AND (?3 = "
        "0 OR a.rowid < ?3) ORDER BY a.rowid DESC LIMIT ?4";
    Statement s(db, sql);
    s.bind(1, rule).bind(2, since_ms).bind(3, before_rowid);
    s.bind(4, static_cast<std::int64_t>(std::clamp<std::size_t>(limit, 1, 100000)));
    while (s.step() == SQLITE_ROW) {
      FailureRow row;
      row.rowid = s.integer(0);
      row.event_id = s.text(1);
      row.call_id = s.text(2);
      row.event = s.text(3);
      row.action.event_seq = s.integer(4);
      row.action.rule = s.text(5);
      row.action.attempt = static_cast<int>(s.integer(6));
      row.action.state = action_state_from(s.text(7)).value_or(ActionState::failed);
      row.action.started_at_ms = s.integer(8);
      row.action.finished_at_ms = s.integer(9);
      row.action.gate = s.text(10);
      row.action.request = s.text(11);
      row.action.status = static_cast<int>(s.integer(12));
      row.action.latency_us = s.integer(13);
      row.action.extracted = s.text(14);
      row.action.error = s.text(15);
      row.action.response = s.text(16);
      out.push_back(std::move(row));
    }
    return out;
  });
}

std::vector<std::pair<std::string, std::int64_t>> SqliteJournal::action_counts(
    std::int64_t since_ms) {
  return read([&](Connection& db) {
    std::vector<std::pair<std::string, std::int64_t>> out;
    // CROSS JOIN keeps events first: the time index finds them, not a scan of every action.
    Statement s(
        db,
        "SELECT a.state, COUNT(*) FROM events e CROSS JOIN actions a ON a.event_seq = e.seq "
        "WHERE e.received_at >= ? GROUP BY a.state ORDER BY a.state");
    s.bind(1, since_ms);
    while (s.step() == SQLITE_ROW) out.emplace_back(s.text(0), s.integer(1));
    return out;
  });
}

std::vector<std::pair<std::int64_t, std::int64_t>> SqliteJournal::events_per_minute(
    std::int64_t since_ms) {
  return read([&](Connection& db) {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    Statement s(db,
                "SELECT received_at / 60000, COUNT(*) FROM events WHERE received_at >= ? "
                "GROUP BY received_at / 60000 ORDER BY 1");
    s.bind(1, since_ms);
    while (s.step() == SQLITE_ROW) out.emplace_back(s.integer(0) * 60, s.integer(1));
    return out;
  });
}

std::vector<std::int64_t> SqliteJournal::action_latencies(std::int64_t since_ms,
                                                          std::size_t limit) {
  return read([&](Connection& db) {
    std::vector<std::int64_t> out;
    Statement s(db,
                "SELECT a.latency_us FROM events e CROSS JOIN actions a ON a.event_seq = e.seq "
                "WHERE e.received_at >= ? AND a.state NOT IN ('started', 'skipped') "
                "ORDER BY a.latency_us LIMIT ?");
    s.bind(1, since_ms).bind(2, static_cast<std::int64_t>(limit));
    while (s.step() == SQLITE_ROW) out.push_back(s.integer(0));
    return out;
  });
}

}  // namespace callbridge::bridge
