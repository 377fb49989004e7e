#include "connectors/commubo/payload.h"

#include <cctype>
#include <nlohmann/json.hpp>

#include "rules/printable.h"

namespace callbridge::commubo {

namespace {

constexpr std::size_t kMaxTel = 64;

std::string scalar_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_null()) return {};
  return v.dump();
}

// Objects become NAME_FIELD, arrays NAME (comma-joined scalars) plus NAME_1..NAME_N. The
// recursion is as deep as the payload, which the bounded parse limits; `budget` is what the
// names and values may still add up to. False when they would exceed it.
bool flatten(const nlohmann::json& value, const std::string& name, rules::Variables& vars,
             std::size_t& budget) {
  auto spend = [&](std::size_t bytes) {
    if (bytes > budget) return false;
    budget -= bytes;
    return true;
  };
  if (value.is_object()) {
    for (const auto& [key, child] : value.items())
      if (!flatten(child, name + "_" + upper_snake(key), vars, budget)) return false;
  } else if (value.is_array()) {
    std::string joined;
    std::size_t index = 0;
    for (const auto& element : value) {
      ++index;
      if (!element.is_structured()) joined += (index > 1 ? "," : "") + scalar_text(element);
      if (!flatten(element, name + "_" + std::to_string(index), vars, budget)) return false;
    }
    if (!spend(name.size() + joined.size())) return false;
    vars[name] = joined;
  } else {
    std::string text = scalar_text(value);
    if (!spend(name.size() + text.size())) return false;
    vars[name] = std::move(text);
  }
  return true;
}

}  // namespace

std::string upper_snake(std::string_view name, std::string_view strip) {
  if (!strip.empty() && name.size() > strip.size() && name.substr(0, strip.size()) == strip &&
      std::isupper(static_cast<unsigned char>(name[strip.size()])))
    name.remove_prefix(strip.size());
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (std::isupper(c) && i > 0) {
      unsigned char prev = static_cast<unsigned char>(name[i - 1]);
      bool next_lower =
          i + 1 < name.size() && std::islower(static_cast<unsigned char>(name[i + 1]));
      if (std::islower(prev) || std::isdigit(prev) || (std::isupper(prev) && next_lower))
        out += '_';
    }
    if (std::isalnum(c))
      out += static_cast<char>(std::toupper(c));
    else if (!out.empty() && out.back() != '_')
      out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

std::optional<rules::EventInput> commubo_event_from_json(const nlohmann::json& payload,
                                                         std::string& error,
                                                         const rules::InputLimits& limits) {
  if (!payload.is_object()) {
    error = "the commubo payload must be a JSON object";
    return std::nullopt;
  }
  rules::EventInput event;
  event.event = std::string(kCommuboEvent);
  event.answered = false;  // commubo calls before it answers

  auto call = payload.find("callId");
  std::optional<std::string> call_id;
  if (call != payload.end()) call_id = rules::call_id_text(*call);
  if (!call_id) {
    error = "\"callId\" is required: a string";
    return std::nullopt;
  }
  if (error = rules::check_call_id(*call_id, "callId"); !error.empty()) return std::nullopt;
  event.call_id = std::move(*call_id);
  if (auto tel = payload.find("phoneNumber"); tel != payload.end()) {
    if (!tel->is_string() && !tel->is_number() && !tel->is_null()) {
      error = "\"phoneNumber\" must be a string";
      return std::nullopt;
    }
    event.tel = scalar_text(*tel);
    if (event.tel.size() > kMaxTel || rules::has_control_characters(event.tel)) {
      error = "\"phoneNumber\" must be at most 64 characters without control characters";
      return std::nullopt;
    }
  }

  bool customer_found = false;
  std::size_t budget = limits.max_expanded_bytes;
  auto too_large = [&] {
    error = "the payload expands into more than server.max_expanded_bytes (" +
            std::to_string(limits.max_expanded_bytes) + ") of variables";
    return std::nullopt;
  };
  for (const auto& [key, value] : payload.items()) {
    if (value.is_object()) {
      if (key == "customer") customer_found = true;
      // Fields repeat their object's name ("customerId"); COMMUBO_CUSTOMER_ID reads better.
      const std::string object = upper_snake(key);
      for (const auto& [field, child] : value.items()) {
        // The reference spells the voice ID field "operatorVocieId" once; accept both.
        std::string name = field == "operatorVocieId" ? "operatorVoiceId" : field;
        if (!flatten(child, "COMMUBO_" + object + "_" + upper_snake(name, key), event.vars, budget))
          return too_large();
      }
    } else if (!flatten(value, "COMMUBO_" + upper_snake(key), event.vars, budget)) {
      return too_large();
    }
  }
  event.vars["COMMUBO_CUSTOMER_FOUND"] = customer_found ? "1" : "0";
  return event;
}

std::optional<rules::EventInput> commubo_event_from_text(std::string_view body, std::string& error,
                                                         const rules::InputLimits& limits) {
  nlohmann::json payload = rules::parse_json_body(body, limits, error);
  if (payload.is_discarded()) {
    error = "invalid_json: " + error;
    return std::nullopt;
  }
  return commubo_event_from_json(payload, error, limits);
}

}  // namespace callbridge::commubo
