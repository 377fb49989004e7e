#include "bridge/journal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace callbridge::bridge {

namespace {

constexpr int kSchemaVersion = 1;

// The console's key of an event's caller number (bridge/console_phone.h does the same in C++):
// full-width digits and "＋" made ASCII, separators dropped, "+81" read as the national "0".
#define CALLBRIDGE_TEL_KEY_SQL                                                                          \
  "replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace("            \
  "replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace("            \
  "replace(replace(replace(json_extract(body, '$.tel'), '０', '0'), '１', '1'), '２', '2'), "        \
  "'３', '3'), '４', '4'), '５', '5'), '６', '6'), '７', '7'), '８', '8'), '９', '9'), '＋', "  \
  "'+'), ' ', ''), '-', ''), '(', ''), ')', ''), '.', ''), '‐', ''), '−', ''), '－', ''), 'ー', " \
  "''), '（', ''), '）', ''), '　', ''), '―', ''), '+81', '0')"

constexpr const char* kSchema =
    R"sql(
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
)sql"
    // Console queries: a call by its caller's number written any way (the key of
    // bridge/console_phone.h, the same replacements), by time, by an action's state.
    "CREATE INDEX IF NOT EXISTS events_by_tel ON events (" CALLBRIDGE_TEL_KEY_SQL
    ");\n"
    "CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at);\n"
    "CREATE INDEX IF NOT EXISTS actions_by_state_seq ON actions (state, event_seq);\n";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string errmsg(sqlite3* db) {
  return db ? sqlite3_errmsg(db) : "out of memory";
}

// The highest event sequence number that may have been handed out, kept in a file beside the
// journal (`<journal>-eventid`). A torn WAL loses the journal's last transactions, AUTOINCREMENT's
// counter with them; the mark does not, so an acknowledged event ID is never given again.
// Reserved in blocks, written and synced before the transaction that uses the block commits.
struct EventIdMark {
  static constexpr std::int64_t kBlock = 1000;
  std::string path;  // empty: no mark (a database in memory)
  std::int64_t reserved = 0;

  // Reads the mark; 0 when there is none.
  static std::int64_t read(const std::string& path) {
    std::ifstream in(path);
    std::int64_t value = 0;
    if (in >> value && value > 0) return value;
    return 0;
  }

  // Makes sure `seq` is covered by a durable reservation.
  bool cover(std::int64_t seq, std::string& error) {
    if (path.empty() || seq <= reserved) return true;
    std::int64_t next = seq + kBlock;
    std::string tmp = path + ".tmp";
    std::string text = std::to_string(next) + "\n";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 &&
              ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
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
};

// A connection with its prepared statements: preparing costs more than running these small
// statements, so each is prepared once. Used by one thread at a time.
struct Connection {
  sqlite3* db = nullptr;
  EventIdMark* ids = nullptr;  // the writer's
  std::map<std::string, sqlite3_stmt*, std::less<>> cache;
  ~Connection() {
    for (auto& [sql, stmt] : cache) sqlite3_finalize(stmt);
    sqlite3_close(db);
  }
  sqlite3_stmt* prepare(std::string_view sql) {
    auto it = cache.find(sql);
    if (it != cache.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                           &stmt, nullptr) != SQLITE_OK)
      return nullptr;
    cache.emplace(std::string(sql), stmt);
    return stmt;
  }
};

// A cached statement with typed binds; reset for the next use on destruction.
class Statement {
 public:
  Statement(Connection& c, std::string_view sql) : db_(c.db), stmt_(c.prepare(sql)) {}
  ~Statement() {
    if (stmt_) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return stmt_ != nullptr; }
  Statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, std::string_view v) {
    // An empty view may have no data pointer, which SQLite would bind as NULL.
    sqlite3_bind_text(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  int step() { return stmt_ ? sqlite3_step(stmt_) : SQLITE_ERROR; }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const {
    auto p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::string error() const { return errmsg(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

bool exec(sqlite3* db, const char* sql, std::string& error) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) == SQLITE_OK) return true;
  error = message ? message : errmsg(db);
  sqlite3_free(message);
  return false;
}

EventState event_state_from(const std::string& s) {
  return s == "done" ? EventState::done : s == "dead" ? EventState::dead : EventState::pending;
}

StoredEvent read_event(const Statement& s) {
  StoredEvent e;
  e.seq = s.integer(0);
  e.event_id = s.text(1);
  e.call_id = s.text(2);
  e.event = s.text(3);
  e.body = s.text(4);
  e.received_at_ms = s.integer(5);
  e.state = event_state_from(s.text(6));
  return e;
}

ActionRecord read_action(const Statement& s) {
  ActionRecord a;
  a.event_seq = s.integer(0);
  a.rule = s.text(1);
  a.attempt = static_cast<int>(s.integer(2));
  a.state = action_state_from(s.text(3)).value_or(ActionState::failed);
  a.started_at_ms = s.integer(4);
  a.finished_at_ms = s.integer(5);
  a.gate = s.text(6);
  a.request = s.text(7);
  a.status = static_cast<int>(s.integer(8));
  a.latency_us = s.integer(9);
  a.extracted = s.text(10);
  a.error = s.text(11);
  return a;
}

constexpr const char* kEventColumns = "seq, 'ev-' || seq, call_id, event, body, received_at, state";
constexpr const char* kActionColumns =
    "event_seq, rule, attempt, state, started_at, finished_at, gate, request, status, latency_us, "
    "extracted, error";

}  // namespace

std::string_view to_string(EventState state) {
  switch (state) {
    case EventState::pending:
      return "pending";
    case EventState::done:
      return "done";
    case EventState::dead:
      return "dead";
  }
  return "pending";
}

std::string_view to_string(ActionState state) {
  switch (state) {
    case ActionState::started:
      return "started";
    case ActionState::retrying:
      return "retrying";
    case ActionState::succeeded:
      return "succeeded";
    case ActionState::http_error:
      return "http_error";
    case ActionState::failed:
      return "failed";
    case ActionState::skipped:
      return "skipped";
    case ActionState::unknown:
      return "unknown";
    case ActionState::dead:
      return "dead";
    case ActionState::replayed:
      return "replayed";
  }
  return "failed";
}

std::optional<ActionState> action_state_from(std::string_view text) {
  for (ActionState s : {ActionState::started, ActionState::retrying, ActionState::succeeded,
                        ActionState::http_error, ActionState::failed, ActionState::skipped,
                        ActionState::unknown, ActionState::dead, ActionState::replayed})
    if (to_string(s) == text) return s;
  return std::nullopt;
}

struct Journal::Impl {
  // One write: runs inside the batch transaction; returns false with an error to roll it back.
  struct Write {
    std::function<bool(Connection&, std::string&)> apply;
    bool detached = false;  // nobody waits for it
    // Guarded by done_mutex.
    std::string result;  // empty: committed
    bool done = false;
    std::condition_variable wake;
  };
  using WritePtr = std::shared_ptr<Write>;

  JournalOptions options;
  Connection writer;
  std::mutex read_mutex;
  Connection reader;

  // Group commit in two stages. The writer takes whatever queued while its last transaction ran
  // and commits it as one. Waking a caller costs a system call each, so when callers wait for the
  // next commit the completer wakes a batch's callers while the writer starts that commit;
  // otherwise the writer wakes them itself and saves the hand-off.
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<WritePtr> queue;
  std::size_t queued_callers = 0;  // writes in `queue` whose caller waits
  bool stopping = false;
  std::thread thread;

  std::mutex done_mutex;
  std::condition_variable completer_wake;
  std::deque<std::vector<WritePtr>> finished;
  bool completer_stopping = false;
  std::thread completer;

  std::atomic<std::uint64_t> commits{0};
  std::atomic<std::uint64_t> failed_detached{0};
  std::atomic<std::int64_t> last_commit_us{0};

  EventIdMark ids;

  std::mutex health_mutex;
  bool writable = true;  // the last commit worked
  std::string unwritable_reason;
  std::chrono::steady_clock::time_point last_probe{};

  ~Impl() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    if (thread.joinable()) thread.join();
    {
      std::lock_guard lock(done_mutex);
      completer_stopping = true;
    }
    completer_wake.notify_all();
    if (completer.joinable()) completer.join();
  }

  void run() {
    std::vector<WritePtr> batch;
    while (true) {
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        while (!queue.empty() && batch.size() < options.max_batch) {
          if (!queue.front()->detached) --queued_callers;
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      std::vector<std::string> results = commit(batch);
      std::size_t callers = 0;
      for (const auto& w : batch) callers += w->detached ? 0 : 1;
      // Waking the completer costs as much as waking one caller: hand off only a batch of
      // several callers, and only when callers wait for the next commit.
      bool hand_off = false;
      if (callers > 1) {
        std::lock_guard lock(mutex);
        hand_off = queued_callers > 0;
      }
      {
        std::lock_guard lock(done_mutex);
        for (std::size_t i = 0; i < batch.size(); ++i) {
          batch[i]->result = std::move(results[i]);
          batch[i]->done = true;
          if (batch[i]->detached && !batch[i]->result.empty()) failed_detached++;
        }
        if (hand_off) finished.push_back(std::move(batch));
      }
      if (hand_off)
        completer_wake.notify_one();
      else
        wake_callers(batch);
      batch.clear();
    }
  }

  std::vector<std::string> commit(const std::vector<WritePtr>& batch) {
    std::vector<std::string> results(batch.size());
    std::string error;
    bool ok = exec(writer.db, "BEGIN IMMEDIATE", error);
    for (std::size_t i = 0; ok && i < batch.size(); ++i) {
      // A failing write rolls back only itself, so it does not take the batch down with it.
      // A write of several statements is undone whole when one of them fails.
      std::string write_error;
      Statement(writer, "SAVEPOINT write").step();
      bool applied = batch[i]->apply(writer, write_error);
      int code = sqlite3_errcode(writer.db);
      if (!applied && !sqlite3_get_autocommit(writer.db))
        Statement(writer, "ROLLBACK TO write").step();
      if (!sqlite3_get_autocommit(writer.db)) Statement(writer, "RELEASE write").step();
      if (!applied) {
        results[i] = write_error.empty() ? errmsg(writer.db) : write_error;
        // A full disk or an I/O error may roll the whole transaction back: then what follows
        // would commit on its own while its caller hears of a failure; fail the batch instead.
        if (sqlite3_get_autocommit(writer.db)) {
          ok = false;
          error = results[i];
        } else if (storage_failure(code)) {
          note_health(false, results[i]);
        }
      }
    }
    auto started = std::chrono::steady_clock::now();
    if (ok) ok = exec(writer.db, "COMMIT", error);
    last_commit_us = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count();
    if (!ok) {
      std::string ignored;
      exec(writer.db, "ROLLBACK", ignored);
      for (auto& r : results) r = error.empty() ? "commit failed" : error;
      note_health(false, error.empty() ? "commit failed" : error);
    } else {
      ++commits;
      if (std::none_of(results.begin(), results.end(),
                       [](const std::string& r) { return !r.empty(); }))
        note_health(true, {});
    }
    return results;
  }

  static bool storage_failure(int code) {
    switch (code & 0xff) {
      case SQLITE_FULL:
      case SQLITE_IOERR:
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
      case SQLITE_READONLY:
      case SQLITE_CANTOPEN:
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB:
      case SQLITE_NOMEM:
        return true;
      default:
        return false;
    }
  }

  void note_health(bool ok, std::string reason) {
    std::lock_guard lock(health_mutex);
    writable = ok;
    unwritable_reason = std::move(reason);
  }

  static void wake_callers(const std::vector<WritePtr>& batch) {
    for (const auto& w : batch)
      if (!w->detached) w->wake.notify_one();
  }

  void run_completer() {
    std::unique_lock lock(done_mutex);
    while (true) {
      completer_wake.wait(lock, [&] { return completer_stopping || !finished.empty(); });
      if (finished.empty()) return;
      std::vector<WritePtr> batch = std::move(finished.front());
      finished.pop_front();
      lock.unlock();
      wake_callers(batch);
      batch.clear();
      lock.lock();
    }
  }

  bool enqueue(WritePtr write) {
    {
      std::lock_guard lock(mutex);
      if (stopping) return false;
      if (!write->detached) ++queued_callers;
      queue.push_back(std::move(write));
    }
    wake.notify_one();
    return true;
  }

  bool submit(std::function<bool(Connection&, std::string&)> apply, std::string& error) {
    auto write = std::make_shared<Write>();
    write->apply = std::move(apply);
    if (!enqueue(write)) {
      error = "journal is closing";
      return false;
    }
    std::unique_lock lock(done_mutex);
    write->wake.wait(lock, [&] { return write->done; });
    error = std::move(write->result);
    return error.empty();
  }

  // Queued for the next group commit; the caller does not wait. Written before the journal
  // closes (the writer drains its queue).
  void submit_detached(std::function<bool(Connection&, std::string&)> apply) {
    auto write = std::make_shared<Write>();
    write->apply = std::move(apply);
    write->detached = true;
    if (!enqueue(std::move(write))) failed_detached++;
  }

  template <class F>
  auto read(F&& f) {
    std::lock_guard lock(read_mutex);
    return f(reader);
  }
};

namespace {

constexpr const char* kRecoveryHint =
    "stop callbridge, keep a copy of the file with its -wal and -shm files, then restore a backup "
    "or recover it as docs/reliability.md describes (\"Recovering a damaged journal\")";

bool is_file_database(const std::string& path) {
  return !path.empty() && path != ":memory:" && path.rfind("file:", 0) != 0;
}

// What PRAGMA quick_check or integrity_check finds; empty when the database is sound.
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

// A journal file that exists but holds nothing: callbridge never leaves one (it writes the
// header as it creates the file), so something emptied it.
bool empty_file(const std::string& path) {
  std::error_code ec;
  return is_file_database(path) && std::filesystem::is_regular_file(path, ec) &&
         std::filesystem::file_size(path, ec) == 0 && !ec;
}

}  // namespace

std::string event_id_mark_path(const std::string& journal_path) {
  return journal_path + "-eventid";
}

std::vector<std::string> Journal::check(const std::string& path) {
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

std::unique_ptr<Journal> Journal::open(const JournalOptions& options, std::string& error) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  const std::string& path = options.path;
  if (empty_file(path)) {
    error = "journal " + path +
            " is empty (0 bytes), so its calls and events are gone; refusing to start with an "
            "empty journal. Restore it from a backup, or delete the file to start a new, empty "
            "journal on purpose";
    return nullptr;
  }
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &impl->writer.db, flags, nullptr) != SQLITE_OK) {
    error = errmsg(impl->writer.db);
    return nullptr;
  }
  sqlite3_busy_timeout(impl->writer.db, 5000);
  std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") +
                        (options.fsync_each_commit ? "FULL" : "NORMAL") + ";";
  auto damaged = [&](const std::string& what) {
    error = "journal " + path + " is damaged (" + what + "); " + kRecoveryHint;
  };
  if (!exec(impl->writer.db, pragmas.c_str(), error)) {
    int code = sqlite3_errcode(impl->writer.db);
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) damaged(error);
    return nullptr;
  }
  // A quick structural check (pages, records, no index contents): damage found now is damage
  // that would otherwise show as calls that answer 404 or writes that fail later.
  if (auto problems = check_database(impl->writer.db, "PRAGMA quick_check"); !problems.empty()) {
    damaged(join_problems(problems, 5));
    return nullptr;
  }
  if (!exec(impl->writer.db, kSchema, error)) return nullptr;
  {
    Statement version(impl->writer, "PRAGMA user_version");
    if (version.step() == SQLITE_ROW && version.integer(0) > kSchemaVersion) {
      error =
          "journal schema " + std::to_string(version.integer(0)) + " is newer than this callbridge";
      return nullptr;
    }
  }
  exec(impl->writer.db, ("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str(), error);
  if (is_file_database(path)) {
    // Event IDs continue after the highest one ever handed out, even if the journal lost its
    // last transactions (a torn WAL) or was restored from an older copy.
    impl->ids.path = event_id_mark_path(path);
    std::int64_t mark = EventIdMark::read(impl->ids.path);
    impl->ids.reserved = mark;
    std::int64_t counter = 0;
    {
      Statement seq(impl->writer,
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), "
                    "0), COALESCE((SELECT MAX(seq) FROM events), 0))");
      if (seq.step() == SQLITE_ROW) counter = seq.integer(0);
    }
    if (mark > counter) {
      Statement raise(impl->writer,
                      "INSERT OR REPLACE INTO sqlite_sequence (rowid, name, seq) VALUES ((SELECT "
                      "rowid FROM sqlite_sequence WHERE name = 'events'), 'events', ?)");
      raise.bind(1, mark);
      if (raise.step() != SQLITE_DONE) {
        error = "cannot continue event IDs after " + std::to_string(mark) + ": " + raise.error();
        return nullptr;
      }
    }
    impl->writer.ids = &impl->ids;
  }
  if (sqlite3_open_v2(path.c_str(), &impl->reader.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    error = errmsg(impl->reader.db);
    return nullptr;
  }
  sqlite3_busy_timeout(impl->reader.db, 5000);
  impl->thread = std::thread([p = impl.get()] { p->run(); });
  impl->completer = std::thread([p = impl.get()] { p->run_completer(); });
  return std::unique_ptr<Journal>(new Journal(std::move(impl)));
}

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Journal::~Journal() = default;

namespace {

// Inserts `stored` (call, event, body, received_at, state) and sets its seq and public ID.
bool insert_event(Connection& db, StoredEvent& stored, std::string& e) {
  Statement s(db,
              "INSERT INTO events (call_id, event, body, received_at, state, finished_at) VALUES "
              "(?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 = 'pending' THEN NULL ELSE ?4 END)");
  s.bind(1, stored.call_id).bind(2, stored.event).bind(3, stored.body);
  s.bind(4, stored.received_at_ms).bind(5, to_string(stored.state));
  if (s.step() != SQLITE_DONE) {
    e = s.error();
    return false;
  }
  stored.seq = sqlite3_last_insert_rowid(db.db);
  stored.event_id = "ev-" + std::to_string(stored.seq);
  return !db.ids || db.ids->cover(stored.seq, e);
}

StoredEvent new_event(const std::string& call_id, const std::string& event, const std::string& body,
                      EventState state) {
  StoredEvent stored;
  stored.call_id = call_id;
  stored.event = event;
  stored.body = body;
  stored.received_at_ms = now_ms();
  stored.state = state;
  return stored;
}

}  // namespace

std::optional<StoredEvent> Journal::append_event(const std::string& call_id,
                                                 const std::string& event, const std::string& body,
                                                 std::string& error) {
  StoredEvent stored = new_event(call_id, event, body, EventState::pending);
  bool ok = impl_->submit(
      [&](Connection& db, std::string& e) { return insert_event(db, stored, e); }, error);
  if (!ok) return std::nullopt;
  return stored;
}

std::optional<StoredEvent> Journal::append_finished_event(
    const std::string& call_id, const std::string& event, const std::string& body,
    const std::string& defaults_json, const std::string& vars_json, std::string& error) {
  StoredEvent stored = new_event(call_id, event, body, EventState::done);
  bool ok = impl_->submit(
      [&](Connection& db, std::string& e) {
        if (!insert_event(db, stored, e)) return false;
        Statement v(db,
                    "INSERT INTO calls (call_id, vars, updated_at) VALUES (?1, json_patch(?2, ?3), "
                    "?4) ON CONFLICT (call_id) DO UPDATE SET vars = "
                    "json_patch(json_patch(?2, calls.vars), ?3), updated_at = ?4");
        v.bind(1, call_id).bind(2, defaults_json).bind(3, vars_json).bind(4, stored.received_at_ms);
        if (v.step() != SQLITE_DONE) {
          e = v.error();
          return false;
        }
        return true;
      },
      error);
  if (!ok) return std::nullopt;
  return stored;
}

namespace {

std::function<bool(Connection&, std::string&)> write_action(ActionRecord a) {
  return [a = std::move(a)](Connection& db, std::string& e) {
    Statement s(db,
                "INSERT OR REPLACE INTO actions (event_seq, rule, attempt, state, started_at, "
                "finished_at, gate, request, status, latency_us, extracted, error) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?)");
    s.bind(1, a.event_seq)
        .bind(2, a.rule)
        .bind(3, std::int64_t{a.attempt})
        .bind(4, to_string(a.state));
    s.bind(5, a.started_at_ms).bind(6, a.finished_at_ms).bind(7, a.gate).bind(8, a.request);
    s.bind(9, std::int64_t{a.status})
        .bind(10, a.latency_us)
        .bind(11, a.extracted)
        .bind(12, a.error);
    if (s.step() == SQLITE_DONE) return true;
    e = s.error();
    return false;
  };
}

std::function<bool(Connection&, std::string&)> write_kv(std::string ns, std::string key,
                                                        std::string value) {
  return [ns = std::move(ns), key = std::move(key), value = std::move(value)](Connection& db,
                                                                              std::string& e) {
    Statement s(db,
                "INSERT INTO kv (ns, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
    s.bind(1, ns).bind(2, key).bind(3, value).bind(4, now_ms());
    if (s.step() == SQLITE_DONE) return true;
    e = s.error();
    return false;
  };
}

}  // namespace

bool Journal::record_action(const ActionRecord& a, std::string& error) {
  return impl_->submit(write_action(a), error);
}

void Journal::record_action_later(ActionRecord action) {
  impl_->submit_detached(write_action(std::move(action)));
}

bool Journal::finish_event(std::int64_t seq, EventState state, const std::string& call_id,
                           const std::string& vars_json, std::string& error) {
  return impl_->submit(
      [&](Connection& db, std::string& e) {
        std::int64_t now = now_ms();
        Statement s(db, "UPDATE events SET state = ?, finished_at = ? WHERE seq = ?");
        s.bind(1, to_string(state)).bind(2, now).bind(3, seq);
        if (s.step() != SQLITE_DONE) {
          e = s.error();
          return false;
        }
        Statement v(db,
                    "INSERT INTO calls (call_id, vars, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (call_id) DO UPDATE SET vars = excluded.vars, updated_at = "
                    "excluded.updated_at");
        v.bind(1, call_id).bind(2, vars_json).bind(3, now);
        if (v.step() != SQLITE_DONE) {
          e = v.error();
          return false;
        }
        return true;
      },
      error);
}

std::vector<StoredEvent> Journal::pending_events() {
  return impl_->read([](Connection& db) {
    std::vector<StoredEvent> out;
    Statement s(db, (std::string("SELECT ") + kEventColumns +
                     " FROM events WHERE state = 'pending' ORDER BY seq")
                        .c_str());
    while (s.step() == SQLITE_ROW) out.push_back(read_event(s));
    return out;
  });
}

std::vector<ActionRecord> Journal::actions_of(std::int64_t event_seq) {
  return impl_->read([&](Connection& db) {
    std::vector<ActionRecord> out;
    Statement s(db, (std::string("SELECT ") + kActionColumns +
                     " FROM actions WHERE event_seq = ? ORDER BY rowid")
                        .c_str());
    s.bind(1, event_seq);
    while (s.step() == SQLITE_ROW) out.push_back(read_action(s));
    return out;
  });
}

std::optional<std::string> Journal::call_vars(const std::string& call_id) {
  return impl_->read([&](Connection& db) -> std::optional<std::string> {
    Statement s(db, "SELECT vars FROM calls WHERE call_id = ?");
    s.bind(1, call_id);
    if (s.step() == SQLITE_ROW) return s.text(0);
    return std::nullopt;
  });
}

std::vector<StoredEvent> Journal::events_of_call(const std::string& call_id) {
  return impl_->read([&](Connection& db) {
    std::vector<StoredEvent> out;
    Statement s(
        db, (std::string("SELECT ") + kEventColumns + " FROM events WHERE call_id = ? ORDER BY seq")
                .c_str());
    s.bind(1, call_id);
    while (s.step() == SQLITE_ROW) out.push_back(read_event(s));
    return out;
  });
}

std::optional<StoredEvent> Journal::event(std::int64_t seq) {
  return impl_->read([&](Connection& db) -> std::optional<StoredEvent> {
    Statement s(db,
                (std::string("SELECT ") + kEventColumns + " FROM events WHERE seq = ?").c_str());
    s.bind(1, seq);
    if (s.step() == SQLITE_ROW) return read_event(s);
    return std::nullopt;
  });
}

std::vector<CallSummary> Journal::recent_calls(std::size_t limit, bool failures_only) {
  return impl_->read([&](Connection& db) {
    std::vector<CallSummary> out;
    std::string sql =
        "SELECT e.call_id, MIN(e.received_at), MAX(e.received_at), COUNT(DISTINCT e.seq), "
        "COUNT(a.rule) FILTER (WHERE a.state IN ('http_error','failed','unknown','dead')), "
        "COUNT(DISTINCT e.seq) FILTER (WHERE e.state = 'pending') "
        "FROM events e LEFT JOIN actions a ON a.event_seq = e.seq GROUP BY e.call_id ";
    if (failures_only)
      sql +=
          "HAVING COUNT(a.rule) FILTER (WHERE a.state IN ('http_error','failed','unknown','dead')) "
          "> 0 ";
    sql += "ORDER BY MAX(e.seq) DESC LIMIT ?";
    Statement s(db, sql.c_str());
    s.bind(1, static_cast<std::int64_t>(limit));
    while (s.step() == SQLITE_ROW) {
      CallSummary c;
      c.call_id = s.text(0);
      c.first_at_ms = s.integer(1);
      c.last_at_ms = s.integer(2);
      c.events = static_cast<int>(s.integer(3));
      c.failed_actions = static_cast<int>(s.integer(4));
      c.pending_events = static_cast<int>(s.integer(5));
      out.push_back(c);
    }
    return out;
  });
}

std::vector<ActionRecord> Journal::dead_actions(std::size_t limit) {
  return impl_->read([&](Connection& db) {
    std::vector<ActionRecord> out;
    Statement s(db, (std::string("SELECT ") + kActionColumns +
                     " FROM actions WHERE state IN ('dead', 'unknown') ORDER BY rowid DESC LIMIT ?")
                        .c_str());
    s.bind(1, static_cast<std::int64_t>(limit));
    while (s.step() == SQLITE_ROW) out.push_back(read_action(s));
    return out;
  });
}

std::size_t Journal::prune(std::chrono::system_clock::time_point older_than) {
  std::int64_t cutoff =
      std::chrono::duration_cast<std::chrono::milliseconds>(older_than.time_since_epoch()).count();
  std::size_t pruned = 0;
  std::string error;
  impl_->submit(
      [&](Connection& db, std::string& e) {
        const char* steps[] = {
            "CREATE TEMP TABLE IF NOT EXISTS old_calls (call_id TEXT PRIMARY KEY)",
            "DELETE FROM old_calls",
            "INSERT INTO old_calls SELECT call_id FROM events GROUP BY call_id "
            "HAVING MAX(received_at) < ?1 AND SUM(state = 'pending') = 0",
            "DELETE FROM actions WHERE event_seq IN (SELECT seq FROM events WHERE call_id IN "
            "old_calls)",
            "DELETE FROM kv WHERE ns = 'event.notes' AND substr(key, 1, instr(key, '/') - 1) IN "
            "(SELECT 'ev-' || seq FROM events WHERE call_id IN old_calls)",
            "DELETE FROM events WHERE call_id IN old_calls",
            "DELETE FROM calls WHERE call_id IN old_calls",
        };
        for (const char* sql : steps) {
          Statement s(db, sql);
          if (std::string_view(sql).find("?1") != std::string_view::npos) s.bind(1, cutoff);
          if (s.step() != SQLITE_DONE) {
            e = s.error();
            return false;
          }
          if (std::string_view(sql).rfind("INSERT INTO old_calls", 0) == 0)
            pruned = static_cast<std::size_t>(sqlite3_changes(db.db));
        }
        return true;
      },
      error);
  return error.empty() ? pruned : 0;
}

bool Journal::kv_put(std::string_view ns, std::string_view key, std::string_view value,
                     std::string& error) {
  return impl_->submit(write_kv(std::string(ns), std::string(key), std::string(value)), error);
}

void Journal::kv_put_later(std::string_view ns, std::string_view key, std::string_view value) {
  impl_->submit_detached(write_kv(std::string(ns), std::string(key), std::string(value)));
}

bool Journal::kv_erase(std::string_view ns, std::string_view key, std::string& error) {
  return impl_->submit(
      [&](Connection& db, std::string& e) {
        Statement s(db, "DELETE FROM kv WHERE ns = ? AND key = ?");
        s.bind(1, ns).bind(2, key);
        if (s.step() == SQLITE_DONE) return true;
        e = s.error();
        return false;
      },
      error);
}

std::optional<std::string> Journal::kv_get(std::string_view ns, std::string_view key) {
  return impl_->read([&](Connection& db) -> std::optional<std::string> {
    Statement s(db, "SELECT value FROM kv WHERE ns = ? AND key = ?");
    s.bind(1, ns).bind(2, key);
    if (s.step() == SQLITE_ROW) return s.text(0);
    return std::nullopt;
  });
}

std::vector<std::pair<std::string, std::string>> Journal::kv_scan(std::string_view ns,
                                                                  std::string_view prefix) {
  // The keys that start with `prefix` are the range [prefix, after): keys compare byte by byte,
  // so the primary key finds them without reading the rest of the namespace (a note per event
  // adds up to millions of keys). `after` is empty when no string follows them all.
  std::string after(prefix);
  while (!after.empty() && static_cast<unsigned char>(after.back()) == 0xFF) after.pop_back();
  if (!after.empty())
    after.back() = static_cast<char>(static_cast<unsigned char>(after.back()) + 1);
  return impl_->read([&](Connection& db) {
    std::vector<std::pair<std::string, std::string>> out;
    Statement s(db, after.empty()
                        ? "SELECT key, value FROM kv WHERE ns = ?1 AND key >= ?2 ORDER BY key"
                        : "SELECT key, value FROM kv WHERE ns = ?1 AND key >= ?2 AND key < ?3 "
                          "ORDER BY key");
    s.bind(1, ns).bind(2, prefix);
    if (!after.empty()) s.bind(3, after);
    while (s.step() == SQLITE_ROW) out.emplace_back(s.text(0), s.text(1));
    return out;
  });
}

bool Journal::writable(std::string& reason) {
  std::lock_guard lock(impl_->health_mutex);
  if (impl_->writable) return true;
  reason = impl_->unwritable_reason;
  // Nothing may be written for a while: a small write finds out when the journal works again.
  auto now = std::chrono::steady_clock::now();
  if (now - impl_->last_probe >= std::chrono::seconds(1)) {
    impl_->last_probe = now;
    impl_->submit_detached(write_kv("journal", "probe", std::to_string(now_ms())));
  }
  return false;
}

std::uint64_t Journal::failed_later_writes() const {
  return impl_->failed_detached.load();
}

std::uint64_t Journal::commits() const {
  return impl_->commits.load();
}

std::chrono::microseconds Journal::last_commit_time() const {
  return std::chrono::microseconds(impl_->last_commit_us.load());
}

// Console queries

namespace {

constexpr std::string_view kBadStates = "('http_error','failed','unknown','dead')";

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

std::vector<Journal::CallRow> Journal::search_calls(const CallQuery& query) {
  return impl_->read([&](Connection& db) {
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
          std::string(kBadStates) +
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

std::vector<Journal::FailureRow> Journal::failures(const std::string& rule, std::int64_t since_ms,
                                                   std::int64_t before_rowid, std::size_t limit) {
  return impl_->read([&](Connection& db) {
    std::vector<FailureRow> out;
    std::string sql = "SELECT a.rowid, 'ev-' || e.seq, e.call_id, e.event";
    for (std::string_view column :
         {"event_seq", "rule", "attempt", "state", "started_at", "finished_at", "gate", "request",
          "status", "latency_us", "extracted", "error"})
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
      out.push_back(std::move(row));
    }
    return out;
  });
}

std::vector<std::pair<std::string, std::int64_t>> Journal::action_counts(std::int64_t since_ms) {
  return impl_->read([&](Connection& db) {
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

std::vector<std::pair<std::int64_t, std::int64_t>> Journal::events_per_minute(
    std::int64_t since_ms) {
  return impl_->read([&](Connection& db) {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    Statement s(db,
                "SELECT received_at / 60000, COUNT(*) FROM events WHERE received_at >= ? "
                "GROUP BY received_at / 60000 ORDER BY 1");
    s.bind(1, since_ms);
    while (s.step() == SQLITE_ROW) out.emplace_back(s.integer(0) * 60, s.integer(1));
    return out;
  });
}

std::vector<std::int64_t> Journal::action_latencies(std::int64_t since_ms, std::size_t limit) {
  return impl_->read([&](Connection& db) {
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
