// `callbridge migrate`: copies an SQLite journal into a PostgreSQL one (calls, events, attempts,
// variables, the key-value store), keeping event IDs. Idempotent: rows already there are kept,
// so it can run again after an interruption or on a journal that grew meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace callbridge::bridge::pg {

struct MigrateProgress {
  std::string table;  // "events", "actions", "calls", "kv"
  std::int64_t done = 0, total = 0;
  std::int64_t copied = 0;  // rows new in PostgreSQL (the rest were there already)
};

// Copies the journal file `sqlite_path` into the database at `conninfo` (schema created when
// missing); `progress` is called every few thousand rows and at the end of each table.
bool migrate_sqlite_journal(const std::string& sqlite_path, const std::string& conninfo,
                            const std::function<void(const MigrateProgress&)>& progress,
                            std::string& error);

}  // namespace callbridge::bridge::pg
