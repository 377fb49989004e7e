// The one vocabulary of error answers: every HTTP error the bridge and its connectors' routes
// give carries one of these codes, by its JSON name, in the one body shape
// {"error": {"code": NAME, "message": MESSAGE}}.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace callbridge::rules {

enum class ErrorCode {
  // Intake and the bridge's own endpoints.
  invalid_event,
  invalid_json,
  invalid_encoding,
  unsupported_media_type,
  unauthorized,
  not_found,
  method_not_allowed,
  too_large,
  busy,                 // the queue is full; retry after Retry-After
  journal_unavailable,  // the event could not be made durable; retry after Retry-After
  http_error,
  internal,
  // The web console.
  forbidden,
  csrf_required,
  too_many_attempts,
  invalid_query,
  invalid_request,
  reload_unavailable,
  // Webhook sources.
  invalid_signature,
  // OAuth callbacks.
  oauth_denied,
  oauth_failed,
  // Escalation chains and the Pigeon-compatible API.
  invalid_params,
  invalid_limit,
  invalid_callflow,
  invalid_guidance,
  missing_callflow,
  missing_guidance,
  unknown_callflow,
  unknown_guidance,
  missing_result_id,
  invalid_result,
  not_active,
  not_pending,
  upstream_error,
  escalation_unavailable,
};

// The code's name in JSON bodies, metrics labels and logs.
std::string_view to_string(ErrorCode code);

// The code whose JSON name is `name`, if any.
std::optional<ErrorCode> error_code_named(std::string_view name);

// {"error": {"code": NAME, "message": MESSAGE}}; invalid UTF-8 in `message` is replaced.
std::string error_body(ErrorCode code, std::string_view message);

}  // namespace callbridge::rules
