// The Pigeon-compatible chain/invoke parameters: inline call flows and guidances, parameters and
// their message rendering, as POST /api/apps/pigeon/chain/invoke reads them; and a chain as the
// store keeps it.
#include <nlohmann/json.hpp>

#include "connectors/escalation/model.h"
#include "connectors/escalation/pigeon_client.h"
#include "fuzz/fuzz_input.h"

using namespace callbridge;
using json = nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return 0;
  // {"params": {...}} or the bare object, as the route accepts.
  json p = body.contains("params") && body["params"].is_object() ? body["params"] : body;

  static const std::map<std::string, escalation::Contact, std::less<>> known = {
      {"c1", {"c1", "佐藤", "0312345678"}}, {"c2", {"c2", "鈴木", "09012345678"}}};
  escalation::ChainState state;
  state.id = "chain-1";
  bool usable = true;
  if (auto it = p.find("callflow"); it != p.end()) {
    std::string error = escalation::callflow_from_pigeon(*it, known, state.callflow);
    usable &= error.empty();
    if (error.empty())
      fuzz::check(escalation::validate(state.callflow).empty(), "an accepted call flow is valid");
  }
  if (auto it = p.find("guidance"); it != p.end()) {
    std::string error = escalation::guidance_from_pigeon(*it, state.guidance);
    usable &= error.empty();
    if (error.empty())
      fuzz::check(escalation::validate(state.guidance).empty(), "an accepted guidance is valid");
  }
  if (auto it = p.find("parameters"); it != p.end())
    state.parameters = escalation::parameters_from_json(*it);
  if (auto it = p.find("callflowId"); it != p.end() && it->is_string())
    state.callflow.id = it->get<std::string>();
  if (auto it = p.find("guidanceId"); it != p.end() && it->is_string())
    state.guidance.id = it->get<std::string>();
  for (const auto& [key, value] : p.items())
    if (value.is_string()) (void)escalation::parse_iso8601(value.get<std::string>());

  std::vector<std::string> missing;
  (void)escalation::render_message(state.guidance.message, state.parameters, &missing);
  for (const auto& [key, response] : state.guidance.responses)
    (void)escalation::render_message(response.message, state.parameters, &missing);
  if (usable) {
    (void)escalation::PigeonClient::invoke_body(state).dump();
    (void)escalation::pigeon_result(state).dump();
    // What the store writes reads back.
    std::string error;
    auto stored = escalation::to_json(state);
    auto back = escalation::chain_from_json(stored, error);
    fuzz::check(back.has_value(), "a stored chain reads back");
    fuzz::check(escalation::to_json(*back) == stored, "a stored chain reads back unchanged");
  }
  // A stored chain of any shape is refused with a reason or read.
  std::string error;
  if (!escalation::chain_from_json(body, error)) fuzz::check(!error.empty(), "refusal says why");
  return 0;
}
