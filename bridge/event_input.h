// Call events as JSON, the one shape shared by the HTTP intake and `simulate --event`.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "rules/engine.h"

namespace callbridge {

// {"event": "inbound", "call_id": "C1", "tel": "0312345678", "answered": false,
//  "vars": {"KEY": "value"}}; `event` and `call_id` required. Returns nullopt with `error` set.
std::optional<rules::EventInput> event_from_json(const nlohmann::json& json, std::string& error);

// The normalized form stored in the journal (canonical event name, vars as strings).
std::string event_to_json_text(const rules::EventInput& event);

}  // namespace callbridge
