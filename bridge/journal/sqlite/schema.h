// The SQLite journal's tables and how a journal file of an older callbridge is brought up to
// date: one migration per schema version, run in order at open.
#pragma once

#include <string>

#include "bridge/journal/sqlite/statement.h"

namespace callbridge::bridge::sqlite {

inline constexpr int kSchemaVersion = 5;

// Creates the tables of a new journal or runs the migrations above the file's version
// (PRAGMA user_version); refuses a journal written by a newer callbridge.
bool migrate(Connection& db, std::string& error);

}  // namespace callbridge::bridge::sqlite
