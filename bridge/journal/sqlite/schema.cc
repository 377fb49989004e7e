#include "bridge/journal/sqlite/schema.h"

#include "bridge/journal/sqlite/tel_key.h"

namespace callbridge::bridge::sqlite {

namespace {

struct Migration {
  int version;      // PRAGMA user_version once it ran
  const char* sql;  // idempotent: a journal without a version may already hold some of it
};

// Version 1: events in arrival order, each rule's attempts, each call's variables, and the
// connectors' key-value state.
constexpr const char* kVersion1 = R"sql(
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  call_id TEXT NOT NULL,
  event TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS events_by_call ON events (call_id, seq);
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, seq);
CREATE TABLE IF NOT EXISTS actions (
  event_seq INTEGER NOT NULL,
  rule TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  state TEXT NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  gate TEXT,
  request TEXT,
  status INTEGER,
  latency_us INTEGER,
  extracted TEXT,
  error TEXT,
  PRIMARY KEY (event_seq, rule, attempt)
);
CREATE INDEX IF NOT EXISTS actions_by_state ON actions (state);
CREATE TABLE IF NOT EXISTS calls (
  call_id TEXT PRIMARY KEY,
  vars TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
  ns TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (ns, key)
) WITHOUT ROWID;
)sql";

// Version 2: the console's searches: a call by its caller's number written any way
// (tel_key.h), by time, by an action's state.
constexpr const char* kVersion2 =
    "CREATE INDEX IF NOT EXISTS events_by_tel ON events (" CALLBRIDGE_TEL_KEY_SQL
    ");\n"
    "CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at);\n"
    "CREATE INDEX IF NOT EXISTS actions_by_state_seq ON actions (state, event_seq);\n";

// Version 3: leases (docs/cluster.md), as in PostgreSQL; expires_at on this process's clock. One
// node owns an SQLite journal, so its leases are always its own, but the primitive is the same.
constexpr const char* kVersion3 = R"sql(
CREATE TABLE IF NOT EXISTS leases (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// Version 4: each attempt's response body (capped and redacted, bridge/action_record.h). An added
// column cannot be added twice, so the step sets its version in its own transaction. (Version 3
// is the leases table's.)
constexpr const char* kVersion4 =
    "BEGIN;\n"
    "ALTER TABLE actions ADD COLUMN response TEXT;\n"
    "PRAGMA user_version=4;\n"
    "COMMIT;\n";

// Version 5: actions_by_state (state) goes: actions_by_state_seq (state, event_seq) serves every
// search it served, and each attempt written touched one B-tree fewer (a WAL frame or two per
// event, docs/benchmarks.md).
constexpr const char* kVersion5 = "DROP INDEX IF EXISTS actions_by_state;\n";

constexpr Migration kMigrations[] = {
    {1, kVersion1}, {2, kVersion2}, {3, kVersion3}, {4, kVersion4}, {5, kVersion5}};
static_assert(kMigrations[std::size(kMigrations) - 1].version == kSchemaVersion);

}  // namespace

bool migrate(Connection& db, std::string& error) {
  int version = 0;
  {
    Statement s(db, "PRAGMA user_version");
    if (s.step() == SQLITE_ROW) version = static_cast<int>(s.integer(0));
  }
  if (version > kSchemaVersion) {
    error = "journal schema " + std::to_string(version) + " is newer than this callbridge";
    return false;
  }
  for (const Migration& m : kMigrations) {
    if (m.version <= version) continue;
    if (!exec(db.db(), m.sql, error)) return false;
    std::string set = "PRAGMA user_version=" + std::to_string(m.version);
    if (!exec(db.db(), set.c_str(), error)) return false;
  }
  return true;
}

}  // namespace callbridge::bridge::sqlite
