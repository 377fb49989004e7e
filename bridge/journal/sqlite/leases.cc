// Leases on SQLite (journal.h, docs/cluster.md): the same statements as PostgreSQL's on this
// process's clock. One process owns an SQLite journal, so its writer serialises every lease
// change and fenced write; no row locks are needed.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "bridge/journal/sqlite/sqlite_journal.h"

namespace callbridge::bridge {

using sqlite::Statement;

namespace {

std::int64_t count_ms(std::chrono::milliseconds ttl) {
  return static_cast<std::int64_t>(ttl.count());
}

}  // namespace

std::optional<std::int64_t> SqliteJournal::acquire_lease(std::string_view name,
                                                         std::string_view owner,
                                                         std::chrono::milliseconds ttl) {
  std::optional<std::int64_t> epoch;
  std::string error;
  bool ok = group_->submit(
      [&](std::string& e) {
        std::int64_t now = now_ms();
        Statement s(writer_,
                    "INSERT INTO leases AS l (name, owner, epoch, expires_at) "
                    "VALUES (?1, ?2, 1, ?3 + ?4) "
                    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                    "epoch = CASE WHEN l.owner = excluded.owner AND l.expires_at > ?3 "
                    "THEN l.epoch ELSE l.epoch + 1 END, expires_at = excluded.expires_at "
                    "WHERE l.owner = excluded.owner OR l.expires_at <= ?3 RETURNING epoch");
        s.bind(1, name).bind(2, owner).bind(3, now).bind(4, count_ms(ttl));
        epoch.reset();
        int rc = s.step();
        if (rc == SQLITE_ROW) {
          epoch = s.integer(0);
          rc = s.step();
        }
        if (rc != SQLITE_DONE) {
          e = s.error();
          return false;
        }
        return true;
      },
      error);
  if (!ok) return std::nullopt;
  return epoch;
}

std::vector<std::string> SqliteJournal::renew_leases(std::string_view owner,
                                                     const std::vector<std::string>& names,
                                                     std::chrono::milliseconds ttl) {
  if (names.empty()) return {};
  std::vector<std::string> held;
  std::string error;
  bool ok = group_->submit(
      [&](std::string& e) {
        held.clear();
        std::int64_t now = now_ms();
        Statement s(writer_,
                    "UPDATE leases SET expires_at = ?3 + ?4 WHERE owner = ?1 AND "
                    "name IN (SELECT value FROM json_each(?2)) AND expires_at > ?3 "
                    "RETURNING name");
        s.bind(1, owner).bind(2, nlohmann::json(names).dump()).bind(3, now).bind(4, count_ms(ttl));
        int rc;
        while ((rc = s.step()) == SQLITE_ROW) held.push_back(s.text(0));
        if (rc != SQLITE_DONE) {
          e = s.error();
          return false;
        }
        return true;
      },
      error);
  // Unknown after an error: nothing is reported lost (as PostgreSQL's).
  if (!ok) return {};
  return not_held(names, held);
}

void SqliteJournal::release_lease(std::string_view name, std::int64_t epoch) {
  std::string error;
  group_->submit(
      [&](std::string& e) {
        std::int64_t now = now_ms();
        Statement s(writer_,
                    "UPDATE leases SET expires_at = ?3 WHERE name = ?1 AND epoch = ?2 AND "
                    "expires_at > ?3");
        s.bind(1, name).bind(2, epoch).bind(3, now);
        return s.run(e);
      },
      error);
}

bool SqliteJournal::kv_put_fenced(std::string_view ns, std::string_view key, std::string_view value,
                                  const Fence& fence, std::string& error) {
  if (fence.empty()) return kv_put(ns, key, value, error);
  return group_->submit(
      [&](std::string& e) {
        std::int64_t now = now_ms();
        Statement s(writer_,
                    "INSERT INTO kv (ns, key, value, updated_at) SELECT ?1, ?2, ?3, ?4 WHERE "
                    "EXISTS (SELECT 1 FROM leases WHERE name = ?5 AND epoch = ?6 AND "
                    "expires_at > ?4) ON CONFLICT (ns, key) DO UPDATE SET value = "
                    "excluded.value, updated_at = excluded.updated_at");
        s.bind(1, ns)
            .bind(2, key)
            .bind(3, value)
            .bind(4, now)
            .bind(5, fence.lease)
            .bind(6, fence.epoch);
        if (!s.run(e)) return false;
        if (sqlite3_changes(writer_.db()) == 1) return true;
        e = kLeaseLost;
        return false;
      },
      error);
}

}  // namespace callbridge::bridge
