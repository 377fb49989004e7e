// Where chains are kept: every state change of a chain is written here before the engine acts
// on it (before a dial starts, after its outcome), so a restart continues where it stopped.
#pragma once

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
};

// Chains as JSON in the bridge's durable key-value store, namespace "escalation.chains".
class KeyValueChainStore final : public ChainStore {
 public:
  static constexpr std::string_view kNamespace = "escalation.chains";
  explicit KeyValueChainStore(rules::KeyValueStore& store) : store_(store) {}
  bool save(const ChainState& state, std::string& error) override;
  std::optional<ChainState> load(const std::string& id) override;
  std::vector<ChainState> load_all(std::vector<std::string>& errors) override;

 private:
  rules::KeyValueStore& store_;
};

// `callbridge history --chains` and `--chain ID`: the chains as this store keeps them.
rules::HistoryView chain_history_view();

}  // namespace callbridge::escalation
