// What every intake path (events, commubo, webhook sources, the Pigeon API, dial results)
// checks the same way: call identifiers, content types and JSON bodies.
#pragma once

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace callbridge::rules {

inline constexpr std::size_t kMaxCallIdLength = 128;

// `server.max_json_depth` and `server.max_expanded_bytes`.
struct InputLimits {
  int max_json_depth = 64;
  std::size_t max_expanded_bytes = 1 << 20;
};

// Well-formed UTF-8: no overlong forms, surrogates or code points beyond U+10FFFF.
bool valid_utf8(std::string_view text);

// Empty when `id` can name a call (1 to 128 bytes of UTF-8, no control characters; '/' is
// fine), else why not, naming `field`.
std::string check_call_id(std::string_view id, std::string_view field);

// A call ID given in JSON: a string, or an integer as its digits (however many).
std::optional<std::string> call_id_text(const nlohmann::json& value);

// `application/json` or `application/*+json`, with or without parameters (`; charset=utf-8`).
bool is_json_content_type(std::string_view content_type);
// `application/x-www-form-urlencoded`, with or without parameters.
bool is_form_content_type(std::string_view content_type);

// Parses a request body within `limits.max_json_depth`; discarded with `error` when it is not
// JSON, not UTF-8 or nested too deep. Integers beyond 64 bits keep their digits, as strings.
nlohmann::json parse_json_body(std::string_view body, const InputLimits& limits,
                               std::string& error);

}  // namespace callbridge::rules
