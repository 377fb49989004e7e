#include "bridge/journal/sqlite/journal_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "bridge/journal/sqlite/statement.h"

namespace callbridge::bridge::sqlite {

bool is_file_database(const std::string& path) {
  return !path.empty() && path != ":memory:" && path.rfind("file:", 0) != 0;
}

bool empty_file(const std::string& path) {
  std::error_code ec;
  return is_file_database(path) && std::filesystem::is_regular_file(path, ec) &&
         std::filesystem::file_size(path, ec) == 0 && !ec;
}

std::vector<std::string> check_database(sqlite3* db, const char* pragma) {
  std::vector<std::string> problems;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, pragma, -1, &stmt, nullptr) != SQLITE_OK) {
    problems.push_back(errmsg(db));
    return problems;
  }
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    auto p = sqlite3_column_text(stmt, 0);
    std::string text = p ? reinterpret_cast<const char*>(p) : "";
    if (text == "ok") continue;
    // One row may hold several lines, under a "*** in database main ***" heading.
    for (std::size_t at = 0; at < text.size();) {
      std::size_t end = std::min(text.find('\n', at), text.size());
      std::string line = text.substr(at, end - at);
      if (!line.empty() && line.rfind("***", 0) != 0) problems.push_back(line);
      at = end + 1;
    }
  }
  if (rc != SQLITE_DONE) problems.push_back(errmsg(db));
  sqlite3_finalize(stmt);
  return problems;
}

std::string join_problems(const std::vector<std::string>& problems, std::size_t at_most) {
  std::string out;
  for (std::size_t i = 0; i < problems.size() && i < at_most; ++i)
    out += (i ? "; " : "") + problems[i];
  if (problems.size() > at_most)
    out += "; and " + std::to_string(problems.size() - at_most) + " more";
  return out;
}

std::vector<std::string> check_journal_file(const std::string& path) {
  std::error_code ec;
  if (!is_file_database(path)) return {"not a journal file: " + path};
  if (!std::filesystem::exists(path, ec)) return {path + " does not exist"};
  if (empty_file(path)) return {path + " is empty (0 bytes)"};
  sqlite3* db = nullptr;
  std::vector<std::string> problems;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    problems.push_back(errmsg(db));
  } else {
    sqlite3_busy_timeout(db, 5000);
    problems = check_database(db, "PRAGMA integrity_check");
    if (problems.empty()) {
      for (const char* table : {"events", "actions", "calls", "kv"}) {
        std::string sql = std::string("SELECT 1 FROM ") + table + " LIMIT 1";
        if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
          problems.push_back(std::string("table ") + table + ": " + errmsg(db));
      }
    }
  }
  sqlite3_close(db);
  return problems;
}

std::string event_id_mark_path(const std::string& journal_path) {
  return journal_path + "-eventid";
}

std::int64_t EventIdMark::read(const std::string& path) {
  std::ifstream in(path);
  std::int64_t value = 0;
  if (in >> value && value > 0) return value;
  return 0;
}

bool EventIdMark::cover(std::int64_t seq, std::string& error) {
  if (path.empty() || seq <= reserved) return true;
  std::int64_t next = seq + kBlock;
  std::string tmp = path + ".tmp";
  std::string text = std::to_string(next) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  ok = ok && ::rename(tmp.c_str(), path.c_str()) == 0;
  if (ok) {
    std::string dir = std::filesystem::path(path).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = dfd >= 0 && ::fsync(dfd) == 0;
    if (dfd >= 0) ::close(dfd);
  }
  if (!ok) {
    error = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  reserved = next;
  return true;
}

bool continue_event_ids(Connection& writer, const std::string& journal_path, EventIdMark& ids,
                        std::string& error) {
  ids.path = event_id_mark_path(journal_path);
  std::int64_t mark = EventIdMark::read(ids.path);
  ids.reserved = mark;
  std::int64_t counter = 0;
  {
    Statement seq(writer,
                  "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), "
                  "0), COALESCE((SELECT MAX(seq) FROM events), 0))");
    if (seq.step() == SQLITE_ROW) counter = seq.integer(0);
  }
  if (mark <= counter) return true;
  Statement raise(writer,
                  "INSERT OR REPLACE INTO sqlite_sequence (rowid, name, seq) VALUES ((SELECT "
                  "rowid FROM sqlite_sequence WHERE name = 'events'), 'events', ?)");
  raise.bind(1, mark);
  if (raise.step() == SQLITE_DONE) return true;
  error = "cannot continue event IDs after " + std::to_string(mark) + ": " + raise.error();
  return false;
}

}  // namespace callbridge::bridge::sqlite
