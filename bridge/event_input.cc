#include "bridge/event_input.h"

#include <nlohmann/json.hpp>

#include "rules/events.h"
#include "rules/input.h"

namespace callbridge {

namespace {

std::optional<std::string> as_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean()) return v.dump();
  if (v.is_null()) return std::string();
  return std::nullopt;
}

}  // namespace

std::optional<rules::EventInput> event_from_json(const nlohmann::json& json, std::string& error) {
  if (!json.is_object()) {
    error = "an event must be a JSON object";
    return std::nullopt;
  }
  for (const auto& [key, value] : json.items()) {
    if (key != "event" && key != "call_id" && key != "tel" && key != "answered" && key != "vars") {
      error = "unknown field \"" + key + "\"; known: event, call_id, tel, answered, vars";
      return std::nullopt;
    }
  }
  rules::EventInput event;
  auto name = json.find("event");
  if (name == json.end() || !name->is_string()) {
    error = "\"event\" is required and must be a string";
    return std::nullopt;
  }
  auto canonical = rules::canonical_event(name->get<std::string>());
  if (!canonical) {
    error = "unknown event \"" + name->get<std::string>() + "\"; known: " + rules::known_events();
    return std::nullopt;
  }
  event.event = *canonical;
  auto call = json.find("call_id");
  std::optional<std::string> call_id;
  if (call != json.end()) call_id = rules::call_id_text(*call);
  if (!call_id || call_id->empty()) {
    error = "\"call_id\" is required: a string of 1 to 128 characters";
    return std::nullopt;
  }
  if (error = rules::check_call_id(*call_id, "call_id"); !error.empty()) return std::nullopt;
  event.call_id = *call_id;
  if (auto tel = json.find("tel"); tel != json.end()) {
    auto text = as_text(*tel);
    if (!text || text->size() > 64) {
      error = "\"tel\" must be a string of at most 64 characters";
      return std::nullopt;
    }
    event.tel = *text;
  }
  if (auto answered = json.find("answered"); answered != json.end()) {
    if (answered->is_boolean()) {
      event.answered = answered->get<bool>();
    } else if (answered->is_number_integer() || answered->is_string()) {
      std::string text = *as_text(*answered);
      if (text == "1" || text == "true")
        event.answered = true;
      else if (text == "0" || text == "false")
        event.answered = false;
    }
    if (!event.answered) {
      error = "\"answered\" must be true, false, 1 or 0";
      return std::nullopt;
    }
  }
  if (auto vars = json.find("vars"); vars != json.end()) {
    if (!vars->is_object()) {
      error = "\"vars\" must be an object of names to values";
      return std::nullopt;
    }
    for (const auto& [key, value] : vars->items()) {
      auto text = as_text(value);
      if (!text) {
        error = "\"vars." + key + "\" must be a string, number or boolean";
        return std::nullopt;
      }
      event.vars[key] = *text;
    }
  }
  return event;
}

std::string event_to_json_text(const rules::EventInput& event) {
  nlohmann::ordered_json j;
  j["event"] = event.event;
  j["call_id"] = event.call_id;
  if (!event.tel.empty()) j["tel"] = event.tel;
  if (event.answered) j["answered"] = *event.answered;
  if (!event.vars.empty()) {
    j["vars"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : event.vars) j["vars"][k] = v;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace callbridge
