#include "connectors/kintone/errors.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace callbridge::kintone {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Codes kintone uses for "too busy, try later" whatever the status says.
bool is_throttling_code(std::string_view code) {
  return code == "GAIA_TO04" || code == "GAIA_TM12" || code == "CB_TO01";
}

}  // namespace

std::string_view to_string(ErrorClass c) {
  switch (c) {
    case ErrorClass::none:
      return "none";
    case ErrorClass::retry:
      return "retry";
    case ErrorClass::reread:
      return "reread";
    case ErrorClass::final:
      return "final";
  }
  return "final";
}

ErrorClass classify(const http::Outcome& outcome, std::string_view code) {
  switch (outcome.kind) {
    case http::OutcomeKind::response:
      break;
    case http::OutcomeKind::timeout:
    case http::OutcomeKind::connect_error:
    case http::OutcomeKind::io_error:
      return ErrorClass::retry;
    case http::OutcomeKind::tls_error:
    case http::OutcomeKind::too_large:
    case http::OutcomeKind::invalid_request:
      return ErrorClass::final;
  }
  int s = outcome.status;
  if (s >= 200 && s < 300) return ErrorClass::none;
  if (is_throttling_code(code)) return ErrorClass::retry;
  if (s == 409) return code == "GAIA_CO02" || code.empty() ? ErrorClass::reread : ErrorClass::final;
  if (s == 429 || s == 500 || s == 502 || s == 503 || s == 504) return ErrorClass::retry;
  return ErrorClass::final;
}

std::optional<ApiError> parse_error(const http::Outcome& outcome) {
  if (outcome.ok()) return std::nullopt;
  ApiError e;
  if (outcome.kind != http::OutcomeKind::response) {
    e.code = "transport";
    e.message = std::string(http::to_string(outcome.kind)) +
                (outcome.error.empty() ? "" : ": " + outcome.error);
    e.kind = classify(outcome);
    return e;
  }
  e.status = outcome.status;
  auto body = nlohmann::json::parse(outcome.body, nullptr, false);
  if (body.is_object()) {
    auto text = [&](const char* key) {
      auto it = body.find(key);
      return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    e.code = text("code");
    e.id = text("id");
    e.message = text("message");
    auto errors = body.find("errors");
    if (errors != body.end() && errors->is_object()) {
      for (const auto& [field, detail] : errors->items()) {
        if (detail.is_object() && detail.contains("messages") && detail["messages"].is_array()) {
          for (const auto& m : detail["messages"])
            if (m.is_string()) e.fields.emplace_back(field, m.get<std::string>());
        }
      }
    }
  }
  if (e.message.empty()) {
    // A proxy or load balancer answered, not kintone: keep a bounded piece of what it said.
    e.message = outcome.body.substr(0, 200);
  }
  for (const auto& [name, value] : outcome.headers) {
    if (!iequals(name, "Retry-After")) continue;
    if (!value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c));
        }))
      e.retry_after = std::chrono::seconds(std::stoll(value.substr(0, 9)));
  }
  e.kind = classify(outcome, e.code);
  return e;
}

bool nothing_applied(const http::Outcome& o, const ApiError& e) {
  if (o.kind == http::OutcomeKind::response)
    return o.status == 429 || o.status == 503 || is_throttling_code(e.code);
  return !o.maybe_sent;
}

std::string ApiError::summary() const {
  std::string out;
  if (status != 0) out += std::to_string(status) + " ";
  out += code.empty() ? "(no kintone code)" : code;
  if (!message.empty()) out += " " + message;
  for (const auto& [field, message] : fields) out += "; " + field + ": " + message;
  if (!id.empty()) out += " (id: " + id + ")";
  return out;
}

}  // namespace callbridge::kintone
