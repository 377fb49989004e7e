#include "bridge/history.h"

#include <ctime>
#include <nlohmann/json.hpp>

#include "rules/clock_text.h"
#include "rules/host.h"

namespace callbridge::bridge {

std::string ms_to_iso(std::int64_t ms) {
  return rules::iso8601_ms(ms);
}

namespace {

nlohmann::json parse_or_string(const std::string& text) {
  if (text.empty()) return nullptr;
  auto j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(text) : j;
}

// Redacts every string of `j`, keys included (a variable's name may be a CRM's field value).
nlohmann::ordered_json redacted(const nlohmann::ordered_json& j, const rules::SecretSet& secrets) {
  if (j.is_string()) return secrets.redact(j.get_ref<const std::string&>());
  if (j.is_array()) {
    auto out = nlohmann::ordered_json::array();
    for (const auto& v : j) out.push_back(redacted(v, secrets));
    return out;
  }
  if (j.is_object()) {
    auto out = nlohmann::ordered_json::object();
    for (const auto& [k, v] : j.items()) out[secrets.redact(k)] = redacted(v, secrets);
    return out;
  }
  return j;
}

}  // namespace

std::string call_history(Journal& journal, const std::string& call_id, bool& found,
                         const rules::SecretSet& secrets, int indent) {
  nlohmann::ordered_json out;
  out["call_id"] = call_id;
  out["events"] = nlohmann::ordered_json::array();
  for (const StoredEvent& e : journal.events_of_call(call_id)) {
    nlohmann::ordered_json ev;
    ev["event_id"] = e.event_id;
    ev["event"] = e.event;
    ev["state"] = to_string(e.state);
    ev["received_at"] = ms_to_iso(e.received_at_ms);
    ev["input"] = parse_or_string(e.body);
    ev["actions"] = nlohmann::ordered_json::array();
    for (const ActionRecord& a : journal.actions_of(e.seq)) {
      nlohmann::ordered_json aj;
      aj["rule"] = a.rule;
      aj["attempt"] = a.attempt;
      aj["state"] = to_string(a.state);
      aj["matched"] = a.state != ActionState::skipped;
      aj["gate"] = a.gate;
      aj["request"] = parse_or_string(a.request);
      aj["status"] = a.status;
      aj["latency_ms"] = static_cast<double>(a.latency_us) / 1000.0;
      aj["extracted"] = parse_or_string(a.extracted.empty() ? "{}" : a.extracted);
      aj["error"] = a.error;
      aj["response"] = a.response;
      if (a.started_at_ms) aj["started_at"] = ms_to_iso(a.started_at_ms);
      if (a.finished_at_ms) aj["finished_at"] = ms_to_iso(a.finished_at_ms);
      ev["actions"].push_back(std::move(aj));
    }
    // What services noted about the event (a commubo answer, a chain it started).
    std::string prefix = rules::event_notes_prefix(e.event_id);
    for (const auto& [key, value] : journal.kv_scan(rules::kEventNotes, prefix))
      ev["notes"][key.substr(prefix.size())] = parse_or_string(value);
    out["events"].push_back(std::move(ev));
  }
  auto vars = journal.call_vars(call_id);
  out["variables"] = vars ? parse_or_string(*vars) : nlohmann::json::object();
  found = !out["events"].empty();
  if (!secrets.empty()) out = redacted(out, secrets);
  return out.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace callbridge::bridge
