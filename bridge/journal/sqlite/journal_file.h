// What is specific to a journal that is an SQLite file: its checks (start-up and
// `callbridge journal check`) and the event-ID high-water mark kept beside it.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

namespace callbridge::bridge::sqlite {

class Connection;

// A path that names a file (not ":memory:" nor a "file:" URI).
bool is_file_database(const std::string& path);

// A journal file that exists but holds nothing: callbridge never leaves one (it writes the
// header as it creates the file), so something emptied it.
bool empty_file(const std::string& path);

// What PRAGMA quick_check or integrity_check finds; empty when the database is sound.
std::vector<std::string> check_database(sqlite3* db, const char* pragma);

// At most `at_most` problems joined with "; ", then how many more.
std::string join_problems(const std::vector<std::string>& problems, std::size_t at_most);

// Checks a journal file, read only (PRAGMA integrity_check, the tables): what is wrong,
// nothing when it is sound.
std::vector<std::string> check_journal_file(const std::string& path);

// The file beside a journal that holds the highest event sequence number ever handed out.
std::string event_id_mark_path(const std::string& journal_path);

// The highest event sequence number that may have been handed out, kept in a file beside the
// journal (`<journal>-eventid`). A torn WAL loses the journal's last transactions, AUTOINCREMENT's
// counter with them; the mark does not, so an acknowledged event ID is never given again.
// Reserved in blocks, written and synced before the transaction that uses the block commits.
struct EventIdMark {
  static constexpr std::int64_t kBlock = 1000;
  std::string path;  // empty: no mark (a database in memory)
  std::int64_t reserved = 0;

  // Reads the mark; 0 when there is none.
  static std::int64_t read(const std::string& path);

  // Makes sure `seq` is covered by a durable reservation.
  bool cover(std::int64_t seq, std::string& error);
};

// Reads the mark beside `journal_path` into `ids` and raises the journal's event counter to it:
// event IDs continue after the highest one ever handed out, even if the journal lost its last
// transactions (a torn WAL) or was restored from an older copy.
bool continue_event_ids(Connection& writer, const std::string& journal_path, EventIdMark& ids,
                        std::string& error);

}  // namespace callbridge::bridge::sqlite
