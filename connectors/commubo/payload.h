// commubo's inbound-call payload, mapped to a `commubo.inbound` event.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "rules/engine.h"
#include "rules/input.h"

namespace callbridge::commubo {

inline constexpr std::string_view kCommuboEvent = "commubo.inbound";
inline constexpr std::string_view kCommuboPath = "/v1/commubo/inbound";
inline constexpr std::string_view kCommuboAnswers = "commubo.answers";  // KeyValueStore namespace

// The payload as commubo sends it -> event `commubo.inbound`: ID = callId, TEL = phoneNumber,
// every other field flattened to COMMUBO_* variables (docs/webhooks.md lists them). A missing
// `customer` (an unknown caller) is normal: COMMUBO_CUSTOMER_FOUND is then 0. nullopt with
// `error` when the body is not a JSON object or has no usable callId.
// The variables may add up to at most `limits.max_expanded_bytes`; the body nests at most
// `limits.max_json_depth` deep.
std::optional<rules::EventInput> commubo_event_from_json(const nlohmann::json& payload,
                                                         std::string& error,
                                                         const rules::InputLimits& limits = {});
std::optional<rules::EventInput> commubo_event_from_text(std::string_view body, std::string& error,
                                                         const rules::InputLimits& limits = {});

// "familyNameKana" -> "FAMILY_NAME_KANA"; `strip` drops a leading object name
// ("customerId" in `customer` -> "ID").
std::string upper_snake(std::string_view name, std::string_view strip = {});

}  // namespace callbridge::commubo
