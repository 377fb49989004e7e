// Standard Webhooks signatures (standardwebhooks.com): headers webhook-id, webhook-timestamp and
// webhook-signature "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" (space-separated, any may
// match), the timestamp within a tolerance, compared in constant time.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace callbridge::webhook {

// "whsec_<base64>" -> the decoded key; any other text is the key itself. nullopt: bad base64.
std::optional<std::string> decode_webhook_secret(std::string_view secret);

std::optional<std::string> base64_decode(std::string_view text);

// "v1,<base64>" for `id`, `timestamp` (seconds since the epoch, as sent) and `body`.
std::string sign_standard_webhook(std::string_view key, std::string_view id,
                                  std::string_view timestamp, std::string_view body);

enum class SignatureCheck { ok, missing_headers, bad_timestamp, stale_timestamp, mismatch };
std::string_view to_string(SignatureCheck check);

SignatureCheck verify_standard_webhook(std::string_view key, std::string_view id,
                                       std::string_view timestamp, std::string_view signatures,
                                       std::string_view body,
                                       std::chrono::system_clock::time_point now,
                                       std::chrono::seconds tolerance);

}  // namespace callbridge::webhook
