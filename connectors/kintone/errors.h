// kintone's error answers as values: the parsed body ({"code","id","message","errors"}) and what
// the caller should do about it. kintone applies nothing on a 429 or a 5xx gateway error, so
// those are retried; a revision conflict is re-read and retried; everything else is final.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_client.h"

namespace callbridge::kintone {

enum class ErrorClass {
  none,    // success
  retry,   // throttled (429, GAIA_TO04...), 502/503/504, connection failures: back off, again
  reread,  // 409 GAIA_CO02 revision conflict: read the record's revision, then try again
  final,   // validation (400 CB_VA01, GAIA_*), auth (401/403), not found (404): never helps
};
std::string_view to_string(ErrorClass c);

struct ApiError {
  int status = 0;       // HTTP status; 0 when no response arrived
  std::string code;     // "CB_VA01", "GAIA_CO02"...; "transport" without a response
  std::string id;       // kintone's error id, to quote to cybozu support
  std::string message;  // kintone's message, or the transport's
  std::vector<std::pair<std::string, std::string>> fields;  // "record.電話番号.value", "必須です。"
  ErrorClass kind = ErrorClass::final;
  std::optional<std::chrono::seconds> retry_after;  // a Retry-After header, when sent

  // "409 GAIA_CO02 リビジョンが一致しません。 (id: ...)" plus field messages.
  std::string summary() const;
};

// nullopt for a 2xx response; otherwise the error, classified.
std::optional<ApiError> parse_error(const http::Outcome& outcome);

// How a failed exchange is handled (ErrorClass::none for 2xx).
ErrorClass classify(const http::Outcome& outcome, std::string_view code = {});

// True when kintone surely changed nothing: throttled (429, GAIA_TO04...) or unavailable (503),
// or the request never left. A gateway's 502/504 or a timeout may hide a write that happened.
bool nothing_applied(const http::Outcome& outcome, const ApiError& error);

}  // namespace callbridge::kintone
