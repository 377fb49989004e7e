// Where chains are kept: every state change of a chain is written here before the engine acts
// on it (before a dial starts, after its outcome), so a restart continues where it stopped.
// In a cluster (a store with leases) a node runs a chain only while it holds the chain's lease
// `chain:<id>`, and every save is fenced by it: a node that lost a chain cannot write it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "connectors/escalation/model.h"
#include "rules/host.h"
#include "rules/registry.h"

namespace callbridge::escalation {

class ChainStore {
 public:
  virtual ~ChainStore() = default;
  // Durable on true.
  virtual bool save(const ChainState& state, std::string& error) = 0;
  virtual std::optional<ChainState> load(const std::string& id) = 0;
  // Every stored chain; unreadable entries are skipped and listed in `errors`.
  virtual std::vector<ChainState> load_all(std::vector<std::string>& errors) = 0;

  // Chains owned by lease. Without leases (one process, tests) every chain is this node's.
  virtual bool leased() const { return false; }
  virtual std::chrono::milliseconds lease_time() const { return std::chrono::seconds(10); }
  // Takes the chain's lease; true while this node holds it, and then save() writes fenced.
  virtual bool claim(const std::string& /*id*/) { return true; }
  virtual bool holds(const std::string& /*id*/) const { return true; }
  // Lets the chain's lease go (it has ended and its event was submitted).
  virtual void release(const std::string& /*id*/) {}
  // Renews every chain lease held; returns the chains this node no longer holds.
  virtual std::vector<std::string> renew() { return {}; }
};

// Chains as JSON in the bridge's durable key-value store, namespace "escalation.chains".
class KeyValueChainStore final : public ChainStore {
 public:
  static constexpr std::string_view kNamespace = "escalation.chains";
  // The lease of chain `id`.
  static std::string lease_name(std::string_view id) { return "chain:" + std::string(id); }

  // `leases` null: no leases, every chain is this node's (save is an ordinary put).
  explicit KeyValueChainStore(rules::KeyValueStore& store, rules::Leases* leases = nullptr)
      : store_(store), leases_(leases) {}
  bool save(const ChainState& state, std::string& error) override;
  std::optional<ChainState> load(const std::string& id) override;
  std::vector<ChainState> load_all(std::vector<std::string>& errors) override;

  bool leased() const override { return leases_ != nullptr; }
  std::chrono::milliseconds lease_time() const override;
  bool claim(const std::string& id) override;
  bool holds(const std::string& id) const override;
  void release(const std::string& id) override;
  std::vector<std::string> renew() override;

 private:
  rules::KeyValueStore& store_;
  rules::Leases* leases_;
  mutable std::mutex mutex_;
  std::map<std::string, std::int64_t, std::less<>> held_;  // chain id -> epoch
};

// `callbridge history --chains` and `--chain ID`: the chains as this store keeps them.
rules::HistoryView chain_history_view();

}  // namespace callbridge::escalation
