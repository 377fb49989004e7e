// The webhook connector's configuration: the `webhooks:` section, a list of sources. Any system
// that can call a URL (a BIZTEL call action by GET, Twilio's form-encoded status callback, a JSON
// webhook signed the Standard Webhooks way) becomes call events; what a source reads is declared
// per field. The routes that receive them are in service.h.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rules/config.h"
#include "rules/regex.h"

namespace YAML {
class Node;
}

namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::webhook {

// Where one value of a delivery comes from, and how it is translated.
struct FieldSpec {
  enum class From { pointer, key, header, constant };
  From from = From::key;
  std::string name;  // JSON pointer, form/query key, header (lower case) or the constant
  std::map<std::string, std::string> map;  // value -> replacement (event names, statuses)
  std::optional<std::string> fallback;     // `default:` when the value is absent
};

struct WebhookSource {
  enum class Auth { token, none, signature };

  std::string name;
  std::string path;
  std::vector<std::string> methods{"POST"};
  bool accept_json = true, accept_form = true, accept_query = true;
  FieldSpec event, call_id;
  std::optional<FieldSpec> tel, answered;
  std::optional<rules::Regex> answered_pattern;  // default /^(1|true|yes)$/i
  std::vector<std::pair<std::string, FieldSpec>> vars;
  Auth auth = Auth::token;
  std::string secret;  // decoded HMAC key
  std::chrono::seconds tolerance{300};
  // Values joined with "/" identify a delivery; default: header webhook-id with signature auth.
  std::vector<FieldSpec> delivery_id;
  std::chrono::seconds dedup_window{86400};
  int reply_status = 200;
  std::optional<rules::Template> reply_body;  // default {"event_id": "...", "call_id": "..."}
  std::string reply_content_type = "application/json";
};

// Top-level `webhooks:` section, a list of sources.
struct WebhookSettings final : rules::Section {
  std::vector<WebhookSource> sources;
};

std::shared_ptr<const rules::Section> load_webhooks_section(const YAML::Node& node,
                                                            rules::ConfigReader& reader);

}  // namespace callbridge::webhook
