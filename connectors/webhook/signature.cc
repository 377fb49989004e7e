#include "connectors/webhook/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>

#include "rules/template.h"

namespace callbridge::webhook {

std::optional<std::string> base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}

std::optional<std::string> decode_webhook_secret(std::string_view secret) {
  constexpr std::string_view prefix = "whsec_";
  if (secret.substr(0, prefix.size()) != prefix) return std::string(secret);
  auto key = base64_decode(secret.substr(prefix.size()));
  if (!key || key->empty()) return std::nullopt;
  return key;
}

std::string sign_standard_webhook(std::string_view key, std::string_view id,
                                  std::string_view timestamp, std::string_view body) {
  std::string content;
  content.reserve(id.size() + timestamp.size() + body.size() + 2);
  content.append(id).append(".").append(timestamp).append(".").append(body);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), digest, &length);
  return "v1," + rules::base64_encode(std::string_view(reinterpret_cast<char*>(digest), length));
}

std::string_view to_string(SignatureCheck check) {
  switch (check) {
    case SignatureCheck::ok:
      return "ok";
    case SignatureCheck::missing_headers:
      return "webhook-id, webhook-timestamp and webhook-signature are required";
    case SignatureCheck::bad_timestamp:
      return "webhook-timestamp is not a number of seconds";
    case SignatureCheck::stale_timestamp:
      return "webhook-timestamp is outside the tolerance";
    case SignatureCheck::mismatch:
      return "no webhook-signature matches";
  }
  return "?";
}

SignatureCheck verify_standard_webhook(std::string_view key, std::string_view id,
                                       std::string_view timestamp, std::string_view signatures,
                                       std::string_view body,
                                       std::chrono::system_clock::time_point now,
                                       std::chrono::seconds tolerance) {
  if (id.empty() || timestamp.empty() || signatures.empty()) return SignatureCheck::missing_headers;
  long long sent = 0;
  auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), sent);
  if (ec != std::errc() || end != timestamp.data() + timestamp.size())
    return SignatureCheck::bad_timestamp;
  const long long at =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  // Both directions: a replay is old, a clock far ahead is as suspicious.
  if (sent < at - tolerance.count() || sent > at + tolerance.count())
    return SignatureCheck::stale_timestamp;
  const std::string expected = sign_standard_webhook(key, id, timestamp, body);
  bool matched = false;
  std::size_t pos = 0;
  while (pos < signatures.size()) {
    std::size_t space = signatures.find(' ', pos);
    std::string_view candidate = signatures.substr(
        pos, space == std::string_view::npos ? std::string_view::npos : space - pos);
    // Every candidate is compared in full, so timing says nothing about which one matched.
    if (candidate.size() == expected.size() &&
        CRYPTO_memcmp(candidate.data(), expected.data(), expected.size()) == 0)
      matched = true;
    if (space == std::string_view::npos) break;
    pos = space + 1;
  }
  return matched ? SignatureCheck::ok : SignatureCheck::mismatch;
}

}  // namespace callbridge::webhook
