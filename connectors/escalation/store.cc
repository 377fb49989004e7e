#include "connectors/escalation/store.h"

namespace callbridge::escalation {

bool KeyValueChainStore::save(const ChainState& state, std::string& error) {
  return store_.put(kNamespace, state.id, to_json(state).dump(), error);
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
