// The cluster's leases (rules::Leases) over the journal's lease table: what
// connectors and the bridge's own singletons (pruning) take, named for this
// node (cluster.node_id) and living cluster.lease_seconds. On SQLite the same
// table serves the one node.
#pragma once

#include <chrono>
#include <string>

#include "bridge/journal/journal.h"
#include "rules/host.h"

namespace callbridge::bridge {

class JournalLeases final : public rules::Leases {
 public:
  JournalLeases(Journal& journal, std::string owner, std::chrono::milliseconds lease_time)
      : journal_(journal), owner_(std::move(owner)), lease_time_(lease_time) {}

  const std::string& owner() const override { return owner_; }
  std::chrono::milliseconds lease_time() const override { return lease_time_; }
  std::optional<std::int64_t> acquire(std::string_view name) override {
    return journal_.acquire_lease(name, owner_, lease_time_);
  }
  std::vector<std::string> renew(const std::vector<std::string>& names) override {
    return journal_.renew_leases(owner_, names, lease_time_);
  }
  void release(std::string_view name, std::int64_t epoch) override {
    journal_.release_lease(name, epoch);
  }
  bool put_fenced(std::string_view ns, std::string_view key, std::string_view value,
                  const rules::LeaseFence& fence, std::string& error) override {
    if (fence.lease.empty()) return journal_.kv_put(ns, key, value, error);
    return journal_.kv_put_fenced(ns, key, value, Fence{fence.lease, fence.epoch}, error);
  }

 private:
  Journal& journal_;
  std::string owner_;
  std::chrono::milliseconds lease_time_;
};

}  // namespace callbridge::bridge
