// The PostgreSQL journal's tables, created or migrated at open. The version is a row of
// callbridge_schema; each migration runs in one transaction under an advisory lock, so nodes
// that start together migrate once.
#pragma once

#include <string>

#include "bridge/journal/postgres/connection.h"

namespace callbridge::bridge::pg {

inline constexpr int kSchemaVersion = 5;

// Brings the schema to kSchemaVersion; false with `error` when the database's is newer.
bool migrate(Connection& db, std::string& error);

}  // namespace callbridge::bridge::pg
