#include "rules/error_code.h"

#include <nlohmann/json.hpp>

namespace callbridge::rules {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_event:
      return "invalid_event";
    case ErrorCode::invalid_json:
      return "invalid_json";
    case ErrorCode::invalid_encoding:
      return "invalid_encoding";
    case ErrorCode::unsupported_media_type:
      return "unsupported_media_type";
    case ErrorCode::unauthorized:
      return "unauthorized";
    case ErrorCode::not_found:
      return "not_found";
    case ErrorCode::method_not_allowed:
      return "method_not_allowed";
    case ErrorCode::too_large:
      return "too_large";
    case ErrorCode::busy:
      return "busy";
    case ErrorCode::journal_unavailable:
      return "journal_unavailable";
    case ErrorCode::http_error:
      return "http_error";
    case ErrorCode::internal:
      return "internal";
    case ErrorCode::forbidden:
      return "forbidden";
    case ErrorCode::csrf_required:
      return "csrf_required";
    case ErrorCode::too_many_attempts:
      return "too_many_attempts";
    case ErrorCode::invalid_query:
      return "invalid_query";
    case ErrorCode::invalid_request:
      return "invalid_request";
    case ErrorCode::reload_unavailable:
      return "reload_unavailable";
    case ErrorCode::invalid_signature:
      return "invalid_signature";
    case ErrorCode::oauth_denied:
      return "oauth_denied";
    case ErrorCode::oauth_failed:
      return "oauth_failed";
    case ErrorCode::invalid_params:
      return "invalid_params";
    case ErrorCode::invalid_limit:
      return "invalid_limit";
    case ErrorCode::invalid_callflow:
      return "invalid_callflow";
    case ErrorCode::invalid_guidance:
      return "invalid_guidance";
    case ErrorCode::missing_callflow:
      return "missing_callflow";
    case ErrorCode::missing_guidance:
      return "missing_guidance";
    case ErrorCode::unknown_callflow:
      return "unknown_callflow";
    case ErrorCode::unknown_guidance:
      return "unknown_guidance";
    case ErrorCode::missing_result_id:
      return "missing_result_id";
    case ErrorCode::invalid_result:
      return "invalid_result";
    case ErrorCode::not_active:
      return "not_active";
    case ErrorCode::not_pending:
      return "not_pending";
    case ErrorCode::upstream_error:
      return "upstream_error";
    case ErrorCode::escalation_unavailable:
      return "escalation_unavailable";
  }
  return "internal";
}

std::optional<ErrorCode> error_code_named(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(ErrorCode::escalation_unavailable); ++i)
    if (to_string(static_cast<ErrorCode>(i)) == name) return static_cast<ErrorCode>(i);
  return std::nullopt;
}

std::string error_body(ErrorCode code, std::string_view message) {
  nlohmann::ordered_json body;
  body["error"]["code"] = to_string(code);
  body["error"]["message"] = message;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace callbridge::rules
