// Leases on PostgreSQL (journal.h, docs/cluster.md): every statement reads the database's clock
// (callbridge_now_ms), so nodes agree on expiry whatever their own clocks say. A fenced write
// locks its lease row (FOR SHARE) in the statement that checks it: a takeover (an UPDATE of the
// row) waits for the writer's transaction to end, and a write after a takeover sees the new
// epoch, so a node that lost a lease cannot slip a write in after the new owner read the state.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "bridge/journal/postgres/postgres_journal.h"

namespace callbridge::bridge {

using pg::Params;
using pg::Result;

namespace {

std::int64_t count_ms(std::chrono::milliseconds ttl) {
  return static_cast<std::int64_t>(ttl.count());
}

}  // namespace

std::optional<std::int64_t> PostgresJournal::acquire_lease(std::string_view name,
                                                           std::string_view owner,
                                                           std::chrono::milliseconds ttl) {
  std::optional<std::int64_t> epoch;
  std::string error;
  group_->submit([&](std::string& e) { return write_acquire(name, owner, ttl, epoch, e); }, error);
  if (!error.empty()) return std::nullopt;
  return epoch;
}

// On the writer thread inside a batch: takes the lease when it is free, expired or owner's.
// Not taken is no error (`epoch` stays empty).
bool PostgresJournal::write_acquire(std::string_view name, std::string_view owner,
                                    std::chrono::milliseconds ttl,
                                    std::optional<std::int64_t>& epoch, std::string& e) {
  Result r = writer_.run(
      "INSERT INTO leases AS l (name, owner, epoch, expires_at) "
      "VALUES ($1, $2, 1, callbridge_now_ms() + $3::bigint) "
      "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
      "epoch = CASE WHEN l.owner = excluded.owner AND l.expires_at > callbridge_now_ms() "
      "THEN l.epoch ELSE l.epoch + 1 END, expires_at = excluded.expires_at "
      "WHERE l.owner = excluded.owner OR l.expires_at <= callbridge_now_ms() RETURNING epoch",
      Params().add(name).add(owner).add(count_ms(ttl)));
  if (!r.ok()) {
    e = r.error();
    return false;
  }
  epoch.reset();
  if (r.rows() == 1) epoch = r.integer(0, 0);
  return true;
}

std::vector<std::string> PostgresJournal::renew_leases(std::string_view owner,
                                                       const std::vector<std::string>& names,
                                                       std::chrono::milliseconds ttl) {
  if (names.empty()) return {};
  std::vector<std::string> held;
  std::string error;
  bool ok = group_->submit(
      [&](std::string& e) {
        held.clear();
        Result r = writer_.run(
            "UPDATE leases SET expires_at = callbridge_now_ms() + $3::bigint "
            "WHERE owner = $1 AND name COLLATE \"C\" IN (SELECT "
            "json_array_elements_text($2::json)) "
            "AND expires_at > callbridge_now_ms() RETURNING name",
            Params().add(owner).add(nlohmann::json(names).dump()).add(count_ms(ttl)));
        if (!r.ok()) {
          e = r.error();
          return false;
        }
        for (int i = 0; i < r.rows(); ++i) held.push_back(r.text(i, 0));
        return true;
      },
      error);
  // Unknown after an error: nothing is reported lost (fenced writes keep a node that did lose
  // one from writing; the next renewal finds out).
  if (!ok) return {};
  return not_held(names, held);
}

void PostgresJournal::release_lease(std::string_view name, std::int64_t epoch) {
  std::string error;
  group_->submit(
      [&](std::string& e) {
        return writer_.run(
            "UPDATE leases SET expires_at = callbridge_now_ms() WHERE name = $1 AND "
            "epoch = $2::bigint AND expires_at > callbridge_now_ms()",
            Params().add(name).add(epoch), e);
      },
      error);
}

// The condition a fenced statement adds, with the lease's name and epoch as $n and $n+1.
std::string PostgresJournal::fence_check(int n) {
  return "EXISTS (SELECT 1 FROM leases WHERE name = $" + std::to_string(n) + " AND epoch = $" +
         std::to_string(n + 1) + "::bigint AND expires_at > callbridge_now_ms() FOR SHARE)";
}

bool PostgresJournal::kv_put_fenced(std::string_view ns, std::string_view key,
                                    std::string_view value, const Fence& fence,
                                    std::string& error) {
  if (fence.empty()) return kv_put(ns, key, value, error);
  static const std::string sql =
      "INSERT INTO kv (ns, key, value, updated_at) SELECT $1, $2, $3, $4::bigint WHERE " +
      fence_check(5) +
      " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, "
      "updated_at = excluded.updated_at";
  return group_->submit(
      [&](std::string& e) {
        Result r = writer_.run(
            sql,
            Params().add(ns).add(key).add(value).add(now_ms()).add(fence.lease).add(fence.epoch));
        if (!r.ok()) {
          e = r.error();
          return false;
        }
        if (r.affected() == 1) return true;
        e = kLeaseLost;
        return false;
      },
      error);
}

}  // namespace callbridge::bridge
