#include "connectors/escalation/store.h"

#include <cstdio>
#include <ostream>

#include "rules/printable.h"

namespace callbridge::escalation {

namespace {

int show_chain(rules::KeyValueStore& store, const std::string& chain_id, std::ostream& out,
               std::ostream& err) {
  auto text = store.get(KeyValueChainStore::kNamespace, chain_id);
  if (!text) {
    err << "no escalation chain " << chain_id << "\n";
    return 1;
  }
  out << nlohmann::json::parse(*text, nullptr, false).dump(2) << "\n";
  return 0;
}

int list_chains(rules::KeyValueStore& store, std::size_t limit, std::ostream& out,
                std::ostream& /*err*/) {
  out << "CHAIN                                 STATUS     LOOPS  ATTEMPTS  CALL\n";
  std::size_t shown = 0;
  for (const auto& [id, text] : store.scan(KeyValueChainStore::kNamespace)) {
    if (shown++ >= limit) break;
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) continue;
    char line[512];
    std::snprintf(line, sizeof line, "%-37s %-10s %5s  %8zu  %s\n", id.c_str(),
                  j.value("status", "").c_str(), j.contains("loop") ? j["loop"].dump().c_str() : "",
                  j.contains("attempts") && j["attempts"].is_array() ? j["attempts"].size() : 0,
                  rules::printable(j.value("origin_call_id", "")).c_str());
    out << line;
  }
  return 0;
}

}  // namespace

rules::HistoryView chain_history_view() {
  return {"chains",    "Escalation chains: status, loops, attempts",
          "chain",     "One escalation chain in detail (JSON): parameters, messages, attempts",
          list_chains, show_chain};
}

bool KeyValueChainStore::save(const ChainState& state, std::string& error) {
  if (!leases_) return store_.put(kNamespace, state.id, to_json(state).dump(), error);
  rules::LeaseFence fence{lease_name(state.id), 0};
  {
    std::lock_guard lock(mutex_);
    auto it = held_.find(state.id);
    if (it == held_.end()) {
      error = "lease lost";
      return false;
    }
    fence.epoch = it->second;
  }
  if (leases_->put_fenced(kNamespace, state.id, to_json(state).dump(), fence, error)) return true;
  if (error == "lease lost") {
    std::lock_guard lock(mutex_);
    if (auto it = held_.find(state.id); it != held_.end() && it->second == fence.epoch)
      held_.erase(it);
  }
  return false;
}

std::chrono::milliseconds KeyValueChainStore::lease_time() const {
  return leases_ ? leases_->lease_time() : ChainStore::lease_time();
}

bool KeyValueChainStore::claim(const std::string& id) {
  if (!leases_) return true;
  auto epoch = leases_->acquire(lease_name(id));
  std::lock_guard lock(mutex_);
  if (!epoch) {
    held_.erase(id);
    return false;
  }
  held_[id] = *epoch;
  return true;
}

bool KeyValueChainStore::holds(const std::string& id) const {
  if (!leases_) return true;
  std::lock_guard lock(mutex_);
  return held_.count(id) > 0;
}

void KeyValueChainStore::release(const std::string& id) {
  if (!leases_) return;
  std::optional<std::int64_t> epoch;
  {
    std::lock_guard lock(mutex_);
    auto it = held_.find(id);
    if (it == held_.end()) return;
    epoch = it->second;
    held_.erase(it);
  }
  leases_->release(lease_name(id), *epoch);
}

std::vector<std::string> KeyValueChainStore::renew() {
  if (!leases_) return {};
  std::vector<std::string> names;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, epoch] : held_) names.push_back(lease_name(id));
  }
  if (names.empty()) return {};
  std::vector<std::string> lost;
  for (auto& name : leases_->renew(names)) lost.push_back(name.substr(6));  // after "chain:"
  std::lock_guard lock(mutex_);
  for (const auto& id : lost) held_.erase(id);
  return lost;
}

std::optional<ChainState> KeyValueChainStore::load(const std::string& id) {
  auto text = store_.get(kNamespace, id);
  if (!text) return std::nullopt;
  auto json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded()) return std::nullopt;
  std::string error;
  return chain_from_json(json, error);
}

std::vector<ChainState> KeyValueChainStore::load_all(std::vector<std::string>& errors) {
  std::vector<ChainState> out;
  for (const auto& [key, text] : store_.scan(kNamespace)) {
    auto json = nlohmann::json::parse(text, nullptr, false);
    std::string error = "not JSON";
    std::optional<ChainState> state;
    if (!json.is_discarded()) state = chain_from_json(json, error);
    if (state)
      out.push_back(std::move(*state));
    else
      errors.push_back("chain " + key + ": " + error);
  }
  return out;
}

}  // namespace callbridge::escalation
