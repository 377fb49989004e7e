#include <map>
#include <mutex>

#include "rules/host.h"

namespace callbridge::rules {

struct LocalLeases::Table {
  struct Row {
    std::string owner;
    std::int64_t epoch = 0;
    std::chrono::steady_clock::time_point expires_at;
  };
  std::mutex mutex;
  std::map<std::string, Row, std::less<>> rows;
};

LocalLeases::LocalLeases(KeyValueStore& store, std::string owner,
                         std::chrono::milliseconds lease_time)
    : LocalLeases(std::make_shared<Table>(), store, std::move(owner), lease_time) {}

LocalLeases::LocalLeases(std::shared_ptr<Table> table, KeyValueStore& store, std::string owner,
                         std::chrono::milliseconds lease_time)
    : table_(std::move(table)), store_(store), owner_(std::move(owner)), lease_time_(lease_time) {}

LocalLeases::~LocalLeases() = default;

std::shared_ptr<LocalLeases> LocalLeases::as(std::string owner) const {
  return std::shared_ptr<LocalLeases>(
      new LocalLeases(table_, store_, std::move(owner), lease_time_));
}

std::optional<std::int64_t> LocalLeases::acquire(std::string_view name) {
  std::lock_guard lock(table_->mutex);
  auto now = std::chrono::steady_clock::now();
  auto it = table_->rows.find(name);
  if (it == table_->rows.end()) it = table_->rows.emplace(std::string(name), Table::Row{}).first;
  Table::Row& row = it->second;
  if (row.owner != owner_ || row.expires_at <= now) {
    if (!row.owner.empty() && row.owner != owner_ && row.expires_at > now) return std::nullopt;
    // A new holding (another owner before, or ours had expired or was released).
    if (row.owner != owner_ || row.expires_at <= now) ++row.epoch;
    row.owner = owner_;
  }
  row.expires_at = now + lease_time_;
  return row.epoch;
}

std::vector<std::string> LocalLeases::renew(const std::vector<std::string>& names) {
  std::lock_guard lock(table_->mutex);
  auto now = std::chrono::steady_clock::now();
  std::vector<std::string> lost;
  for (const auto& name : names) {
    auto it = table_->rows.find(name);
    if (it == table_->rows.end() || it->second.owner != owner_ || it->second.expires_at <= now) {
      lost.push_back(name);
      continue;
    }
    it->second.expires_at = now + lease_time_;
  }
  return lost;
}

void LocalLeases::release(std::string_view name, std::int64_t epoch) {
  std::lock_guard lock(table_->mutex);
  auto it = table_->rows.find(name);
  if (it != table_->rows.end() && it->second.epoch == epoch && it->second.owner == owner_)
    it->second.expires_at = std::chrono::steady_clock::now();
}

bool LocalLeases::put_fenced(std::string_view ns, std::string_view key, std::string_view value,
                             const LeaseFence& fence, std::string& error) {
  if (fence.lease.empty()) return store_.put(ns, key, value, error);
  // The table's lock is held across the write, as the journal checks the fence in the write.
  std::lock_guard lock(table_->mutex);
  auto it = table_->rows.find(fence.lease);
  if (it == table_->rows.end() || it->second.epoch != fence.epoch || it->second.owner != owner_ ||
      it->second.expires_at <= std::chrono::steady_clock::now()) {
    error = "lease lost";
    return false;
  }
  return store_.put(ns, key, value, error);
}

}  // namespace callbridge::rules
