// The console's queries at size: N calls (default 1,000,000) written straight into a journal
// file with SQL, then the p50 and p95 of the calls list's first page, a phone search (the
// number written another way), an outcome filter, a date range and the 50th page.
//
//     callbridge-bench-console [--calls N] [--runs R] [--keep FILE]
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "bench/record_sink.h"
#include "bridge/console_phone.h"
#include "bridge/journal/journal.h"

using namespace callbridge;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

bool exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) == SQLITE_OK) return true;
  std::fprintf(stderr, "%s\n", error ? error : "?");
  sqlite3_free(error);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  long calls = 1000000;
  int runs = 40;
  std::string keep;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--calls")) calls = std::atol(argv[i + 1]);
    if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--keep")) keep = argv[i + 1];
  }
  std::string path = keep.empty()
                         ? (std::filesystem::temp_directory_path() /
                            ("callbridge-bench-console-" + std::to_string(getpid()) + ".db"))
                               .string()
                         : keep;
  std::string error;
  // The journal creates its schema and indexes; the rows go in with plain SQL.
  { auto journal = bridge::Journal::open({path, false, 512}, error); }
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  const long long start_ms = 1795000000000LL;  // 2026-11-19
  const long long step_ms =
      2000;  // a call every 2 s: 1,000,000 calls in 23 days; seq 2i-1 inbound, 2i its hangup
  auto fill = Clock::now();
  exec(db, "PRAGMA synchronous=OFF");
  exec(db, "BEGIN");
  // Every call an inbound event (every fourth a hangup too) with one action: 1 % dead, 2 %
  // http_error, the rest succeeded. 100,000 distinct numbers, written with hyphens.
  exec(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
               std::to_string(calls) +
               ") INSERT INTO events (seq, call_id, event, body, received_at, state, finished_at) "
               "SELECT 2 * i - 1, 'C' || i, 'inbound', json_object('event', 'inbound', 'call_id', "
               "'C' || "
               "i, 'tel', printf('03-%04d-%04d', (i % 100000) / 10000 + 1000, i % 10000)), " +
               std::to_string(start_ms) + " + i * " + std::to_string(step_ms) +
               ", 'done', 0 FROM n");
  exec(db,
       "INSERT INTO events (seq, call_id, event, body, received_at, state, finished_at) "
       "SELECT seq + 1, call_id, 'hangup', json_object('event', 'hangup', 'call_id', "
       "call_id), received_at + 1000, 'done', 0 FROM events WHERE seq % 8 = 7");
  exec(db,
       "INSERT INTO actions (event_seq, rule, attempt, state, started_at, finished_at, gate, "
       "request, status, latency_us, extracted, error) SELECT seq, 'notify-crm', 1, CASE "
       "WHEN seq % 200 = 13 THEN 'dead' WHEN seq % 100 = 5 THEN 'http_error' ELSE 'succeeded' "
       "END, received_at, received_at + 20, 'no gate', '{}', 200, 20000, '{}', '' FROM events "
       "WHERE event = 'inbound'");
  exec(db, "COMMIT");
  exec(db, "ANALYZE");
  sqlite3_close(db);
  std::printf("filled %ld calls in %.1f s\n", calls, ms_since(fill) / 1000);

  auto journal = bridge::Journal::open({path, false, 512}, error);
  if (!journal) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  auto measure = [&](const char* what, const std::function<std::size_t()>& query) {
    std::vector<double> ms;
    std::size_t rows = 0;
    for (int r = 0; r < runs; ++r) {
      auto t = Clock::now();
      rows = query();
      ms.push_back(ms_since(t));
    }
    std::printf("%-28s rows %4zu  p50 %7.2f ms  p95 %7.2f ms\n", what, rows,
                bench::percentile(ms, 50), bench::percentile(ms, 95));
  };
  measure("first page", [&] { return journal->search_calls({}).size(); });
  measure("phone search", [&] {
    bridge::Journal::CallQuery q;
    q.phone_key = *bridge::console_phone_key("＋８１ ３ １００１ ３４５６");  // 03-1001-3456
    return journal->search_calls(q).size();
  });
  measure("outcome dead", [&] {
    bridge::Journal::CallQuery q;
    q.outcome = "dead";
    return journal->search_calls(q).size();
  });
  measure("outcome failed", [&] {
    bridge::Journal::CallQuery q;
    q.outcome = "failed";
    return journal->search_calls(q).size();
  });
  measure("date range (one day)", [&] {
    bridge::Journal::CallQuery q;
    q.from_ms = start_ms + calls * step_ms / 2;
    q.to_ms = q.from_ms + 24LL * 3600 * 1000;
    return journal->search_calls(q).size();
  });
  std::int64_t cursor = 0;
  for (int page = 1; page < 50; ++page) {
    bridge::Journal::CallQuery q;
    q.before_seq = cursor;
    cursor = journal->search_calls(q).back().seq;
  }
  measure("50th page", [&] {
    bridge::Journal::CallQuery q;
    q.before_seq = cursor;
    return journal->search_calls(q).size();
  });
  measure("overview counts (1 h)", [&] {
    return journal->action_counts(start_ms + calls * step_ms - 3600 * 1000).size() +
           journal->events_per_minute(start_ms + calls * step_ms - 3600 * 1000).size();
  });
  journal.reset();
  if (keep.empty())
    for (const char* suffix : {"", "-wal", "-shm", "-eventid"})
      std::filesystem::remove(path + suffix);
  return 0;
}
