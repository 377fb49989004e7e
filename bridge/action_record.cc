#include "bridge/action_record.h"

#include <nlohmann/json.hpp>

namespace callbridge::bridge {

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string request_to_json(const http::Request& request) {
  nlohmann::ordered_json j;
  j["method"] = request.method;
  j["url"] = request.url;
  j["headers"] = nlohmann::ordered_json::array();
  for (const auto& [name, value] : request.headers) j["headers"].push_back({name, value});
  j["body"] = request.body;
  j["timeout_ms"] = request.timeout.count();
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string variables_to_json(const rules::Variables& vars) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : vars) j[k] = v;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

rules::Variables variables_from_json(const std::string& text) {
  rules::Variables vars;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_object())
    for (const auto& [k, v] : j.items())
      if (v.is_string()) vars[k] = v.get<std::string>();
  return vars;
}

ActionState state_of(rules::RuleStatus status) {
  switch (status) {
    case rules::RuleStatus::skipped:
      return ActionState::skipped;
    case rules::RuleStatus::succeeded:
      return ActionState::succeeded;
    case rules::RuleStatus::http_error:
      return ActionState::http_error;
    case rules::RuleStatus::failed:
      return ActionState::failed;
  }
  return ActionState::failed;
}

std::string response_excerpt(std::string_view body, const rules::SecretSet& secrets) {
  std::string text = secrets.redact(body);
  if (text.size() <= kResponseBodyCap) return text;
  std::size_t cut = kResponseBodyCap;
  // Back to the first byte of a UTF-8 sequence so that no character is split.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  std::string shown = text.substr(0, cut);
  shown +=
      "\n[cut: " + std::to_string(cut) + " of " + std::to_string(text.size()) + " bytes shown]";
  return shown;
}

ActionRecord started_record(std::int64_t event_seq, const std::string& rule, int attempt,
                            std::int64_t started_ms, const http::Request& shown) {
  ActionRecord a;
  a.event_seq = event_seq;
  a.rule = rule;
  a.attempt = attempt;
  a.state = ActionState::started;
  a.started_at_ms = started_ms;
  a.request = request_to_json(shown);
  return a;
}

ActionRecord finished_record(std::int64_t event_seq, const std::string& rule, int attempt,
                             ActionState state, const rules::RuleOutcome& outcome,
                             std::int64_t started_ms, const rules::SecretSet& secrets) {
  ActionRecord a;
  a.event_seq = event_seq;
  a.rule = rule;
  a.attempt = attempt;
  a.state = state;
  a.started_at_ms = started_ms;
  a.finished_at_ms = unix_ms_now();
  a.gate = outcome.gate;
  if (outcome.request) a.request = request_to_json(*outcome.request);
  if (outcome.response) {
    a.status = outcome.response->status;
    a.latency_us = outcome.response->latency.count();
    a.response = response_excerpt(outcome.response->body, secrets);
  }
  a.extracted = variables_to_json(outcome.extracted);
  a.error = outcome.error;
  if (!outcome.undefined.empty()) {
    std::string names;
    for (const auto& n : outcome.undefined) names += (names.empty() ? "" : ", ") + n;
    a.error +=
        (a.error.empty() ? "" : "; ") + std::string("undefined variables rendered empty: ") + names;
  }
  a.error = secrets.redact(a.error);
  return a;
}

std::optional<rules::CallContext> call_context(Journal& journal, const std::string& call_id,
                                               const rules::EventInput* event, std::string& error) {
  rules::CallContext call;
  call.call_id = call_id;
  std::optional<std::string> saved;
  if (!journal.read_call_vars(call_id, saved, error)) return std::nullopt;
  if (saved) call.vars = variables_from_json(*saved);
  if (event) rules::Engine::apply_event(*event, call);
  return call;
}

}  // namespace callbridge::bridge
