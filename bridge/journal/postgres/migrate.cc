#include "bridge/journal/postgres/migrate.h"

#include <filesystem>
#include <map>

#include "bridge/journal/postgres/connection.h"
#include "bridge/journal/postgres/schema.h"
#include "bridge/journal/sqlite/journal_file.h"
#include "bridge/journal/sqlite/statement.h"

namespace callbridge::bridge::pg {

namespace {

constexpr std::int64_t kRowsPerTransaction = 2000;

// Copies the rows `select` returns, in transactions of kRowsPerTransaction, with `insert`
// (which binds a row's columns and reports whether it was new).
class TableCopy {
 public:
  TableCopy(Connection& to, std::string table,
            const std::function<void(const MigrateProgress&)>& progress)
      : to_(to), progress_(progress) {
    p_.table = std::move(table);
  }

  bool begin(std::int64_t total, std::string& error) {
    p_.total = total;
    return to_.exec("BEGIN", error);
  }
  // After each row: `inserted` the row was new.
  bool row(bool inserted, std::string& error) {
    ++p_.done;
    if (inserted) ++p_.copied;
    if (p_.done % kRowsPerTransaction != 0) return true;
    if (!to_.exec("COMMIT", error) || !to_.exec("BEGIN", error)) return false;
    progress_(p_);
    return true;
  }
  bool finish(std::string& error) {
    if (!to_.exec("COMMIT", error)) return false;
    progress_(p_);
    return true;
  }

 private:
  Connection& to_;
  const std::function<void(const MigrateProgress&)>& progress_;
  MigrateProgress p_;
};

std::int64_t count(sqlite::Connection& db, const char* table) {
  sqlite::Statement s(db, std::string("SELECT COUNT(*) FROM ") + table);
  return s.step() == SQLITE_ROW ? s.integer(0) : 0;
}

bool inserted(Connection& to, std::string_view sql, const Params& params, bool& was_new,
              std::string& error) {
  Result r = to.run(sql, params);
  if (!r.ok()) {
    error = r.error();
    return false;
  }
  was_new = r.affected() > 0;
  return true;
}

}  // namespace

bool migrate_sqlite_journal(const std::string& sqlite_path, const std::string& conninfo,
                            const std::function<void(const MigrateProgress&)>& progress,
                            std::string& error) {
  if (!std::filesystem::exists(sqlite_path)) {
    error = "no journal " + sqlite_path;
    return false;
  }
  sqlite::Connection from;
  if (!from.open(sqlite_path, SQLITE_OPEN_READONLY, error)) return false;
  Connection to;
  if (!to.open(conninfo, error) || !migrate(to, error)) return false;
  auto failed = [&](const std::string& what) {
    error = what + ": " + error;
    std::string ignored;
    to.exec("ROLLBACK", ignored);
    return false;
  };

  // Events, with each call's positions in seq order (as the SQLite journal orders a call).
  {
    TableCopy copy(to, "events", progress);
    if (!copy.begin(count(from, "events"), error)) return failed("events");
    std::map<std::string, std::int64_t, std::less<>> positions;
    sqlite::Statement s(from,
                        "SELECT seq, call_id, event, body, received_at, state, finished_at, "
                        "finished_at IS NULL FROM events ORDER BY seq");
    while (s.step() == SQLITE_ROW) {
      std::string call_id = s.text(1);
      std::int64_t pos = ++positions[call_id];
      Params p;
      p.add(s.integer(0)).add(call_id).add(pos).add(s.text(2)).add(s.text(3)).add(s.integer(4));
      p.add(s.text(5));
      if (s.integer(7))
        p.null();
      else
        p.add(s.integer(6));
      bool was_new = false;
      if (!inserted(to,
                    "INSERT INTO events (seq, call_id, call_pos, event, body, received_at, state, "
                    "finished_at) VALUES ($1::bigint, $2, $3::bigint, $4, $5, $6::bigint, $7, "
                    "$8::bigint) ON CONFLICT DO NOTHING",
                    p, was_new, error) ||
          !copy.row(was_new, error))
        return failed("events");
    }
    for (const auto& [call_id, last] : positions) {
      if (!to.run("INSERT INTO call_positions (call_id, last_pos) VALUES ($1, $2::bigint) "
                  "ON CONFLICT (call_id) DO UPDATE SET last_pos = "
                  "GREATEST(call_positions.last_pos, excluded.last_pos)",
                  Params().add(call_id).add(last), error))
        return failed("call positions");
    }
    // Event IDs continue after the highest the SQLite journal ever handed out.
    std::int64_t highest = sqlite::EventIdMark::read(sqlite::event_id_mark_path(sqlite_path));
    {
      sqlite::Statement m(from, "SELECT MAX(seq) FROM events");
      if (m.step() == SQLITE_ROW) highest = std::max(highest, m.integer(0));
    }
    if (!to.run("SELECT setval(pg_get_serial_sequence('events', 'seq'), GREATEST(COALESCE("
                "pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 1), "
                "$1::bigint, 1))",
                Params().add(highest), error))
      return failed("event IDs");
    if (!copy.finish(error)) return failed("events");
  }
  {
    TableCopy copy(to, "actions", progress);
    if (!copy.begin(count(from, "actions"), error)) return failed("actions");
    // A journal from before version 4 has no response column (migrating reads it as it is).
    bool has_response = false;
    {
      sqlite::Statement c(from,
                          "SELECT 1 FROM pragma_table_info('actions') WHERE name = 'response'");
      has_response = c.step() == SQLITE_ROW;
    }
    sqlite::Statement s(from, std::string("SELECT event_seq, rule, attempt, state, started_at, "
                                          "finished_at, gate, request, status, latency_us, "
                                          "extracted, error, ") +
                                  (has_response ? "response" : "''") +
                                  " FROM actions ORDER BY rowid");
    while (s.step() == SQLITE_ROW) {
      Params p;
      p.add(s.integer(0)).add(s.text(1)).add(s.integer(2)).add(s.text(3)).add(s.integer(4));
      p.add(s.integer(5)).add(s.text(6)).add(s.text(7)).add(s.integer(8)).add(s.integer(9));
      p.add(s.text(10)).add(s.text(11)).add(s.text(12));
      bool was_new = false;
      if (!inserted(to,
                    "INSERT INTO actions (event_seq, rule, attempt, state, started_at, "
                    "finished_at, gate, request, status, latency_us, extracted, error, response) "
                    "VALUES ($1::bigint, $2, $3::int, $4, $5::bigint, $6::bigint, $7, $8, "
                    "$9::int, $10::bigint, $11, $12, $13) ON CONFLICT DO NOTHING",
                    p, was_new, error) ||
          !copy.row(was_new, error))
        return failed("actions");
    }
    if (!copy.finish(error)) return failed("actions");
  }
  {
    TableCopy copy(to, "calls", progress);
    if (!copy.begin(count(from, "calls"), error)) return failed("calls");
    sqlite::Statement s(from, "SELECT call_id, vars, updated_at FROM calls");
    while (s.step() == SQLITE_ROW) {
      bool was_new = false;
      if (!inserted(to,
                    "INSERT INTO calls (call_id, vars, updated_at) VALUES ($1, $2, $3::bigint) "
                    "ON CONFLICT DO NOTHING",
                    Params().add(s.text(0)).add(s.text(1)).add(s.integer(2)), was_new, error) ||
          !copy.row(was_new, error))
        return failed("calls");
    }
    if (!copy.finish(error)) return failed("calls");
  }
  {
    TableCopy copy(to, "kv", progress);
    if (!copy.begin(count(from, "kv"), error)) return failed("kv");
    sqlite::Statement s(from, "SELECT ns, key, value, updated_at FROM kv");
    while (s.step() == SQLITE_ROW) {
      bool was_new = false;
      if (!inserted(to,
                    "INSERT INTO kv (ns, key, value, updated_at) VALUES ($1, $2, $3, $4::bigint) "
                    "ON CONFLICT DO NOTHING",
                    Params().add(s.text(0)).add(s.text(1)).add(s.text(2)).add(s.integer(3)),
                    was_new, error) ||
          !copy.row(was_new, error))
        return failed("kv");
    }
    if (!copy.finish(error)) return failed("kv");
  }
  return true;
}

}  // namespace callbridge::bridge::pg
