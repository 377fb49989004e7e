// RAII over SQLite: a connection that prepares each statement once, and a statement with typed
// binds that is reset for its next use when it goes out of scope.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace callbridge::bridge::sqlite {

// SQLite's message for the last error on `db` ("out of memory" when there is no connection).
std::string errmsg(sqlite3* db);

// Runs `sql` (one or more statements, no results); false with `error` set when it fails.
bool exec(sqlite3* db, const char* sql, std::string& error);

// A connection with its prepared statements: preparing costs more than running these small
// statements, so each is prepared once. Used by one thread at a time.
class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Opens `path` with `flags` and a 5 s busy timeout; false with `error` set when it cannot.
  bool open(const std::string& path, int flags, std::string& error);
  sqlite3* db() const { return db_; }
  // The cached statement for `sql`, prepared on first use; nullptr when it does not prepare.
  sqlite3_stmt* prepare(std::string_view sql);

 private:
  sqlite3* db_ = nullptr;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
};

// A cached statement with typed binds; reset for the next use on destruction.
class Statement {
 public:
  Statement(Connection& c, std::string_view sql) : db_(c.db()), stmt_(c.prepare(sql)) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Statement& bind(int i, std::int64_t v);
  Statement& bind(int i, const std::string& v);
  Statement& bind(int i, std::string_view v);
  int step() { return stmt_ ? sqlite3_step(stmt_) : SQLITE_ERROR; }
  // Steps a statement that returns no rows; false with `error` set when it fails.
  bool run(std::string& error);
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const;
  std::string error() const { return errmsg(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace callbridge::bridge::sqlite
