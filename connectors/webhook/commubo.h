// commubo's inbound callback (POST before the AI operator answers a call): its payload mapped to
// a `commubo.inbound` event, and the service that answers commubo within a deadline with what
// the event's `decide` rules chose. 200 lets commubo answer the call; any status >= 300 makes it
// reject the call, and so does a callback that fails or times out.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/config.h"
#include "rules/host.h"

namespace YAML {
class Node;
}

namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::webhook {

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

// Top-level `commubo:` section.
struct CommuboSettings final : rules::Section {
  // commubo does not document its callback timeout; the caller hears ringing while we think, so
  // answer well inside any plausible client timeout (docs/webhooks.md explains the choice).
  std::chrono::milliseconds deadline{2000};
  int default_status = 200;   // no decide rule ran, or the deadline passed
  std::string default_body;   // empty: a JSON summary of the answer
  int on_error_status = 200;  // malformed payload or the event could not be stored
};

std::shared_ptr<const rules::Section> load_commubo_section(const YAML::Node& node,
                                                           rules::ConfigReader& reader);

// One answer given to commubo, as journaled in `commubo.answers`.
struct CommuboAnswer {
  int status = 200;
  std::string body;    // the decide rule's body; empty: the JSON summary
  std::string reason;  // decided | default | deadline | error
  std::string rule;    // the deciding rule, when reason == decided
};

// Answers POST /v1/commubo/inbound. Thread-safe; one handler call per HTTP request.
class CommuboService final : public rules::Service {
 public:
  CommuboService(CommuboSettings settings, rules::KeyValueStore& store, rules::EventSink& events,
                 rules::InputLimits limits = {});

  rules::Route route();
  void handle(const rules::HttpRequest& request, rules::HttpResponse& response);
  void metrics(std::string& out) const override;
  const CommuboSettings& settings() const { return settings_; }

 private:
  void answer(const CommuboAnswer& answer, const std::string& key, const std::string& call_id,
              const std::string& event_id, const std::string& detail,
              std::chrono::steady_clock::time_point received, rules::HttpResponse& response);

  CommuboSettings settings_;
  rules::InputLimits limits_;
  rules::KeyValueStore& store_;
  rules::EventSink& events_;
  std::atomic<unsigned long long> sequence_{0};
  mutable std::mutex metrics_mutex_;
  std::map<std::pair<std::string, int>, unsigned long long> answers_;  // (reason, status) -> n
};

}  // namespace callbridge::webhook
