// commubo's inbound callback (POST before the AI operator answers a call): the service that
// submits the payload as a `commubo.inbound` event (payload.h) and answers commubo within a
// deadline with what the event's `decide` rules chose. 200 lets commubo answer the call; any status
// >= 300 makes it reject the call, and so does a callback that fails or times out.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/commubo/config.h"
#include "connectors/commubo/payload.h"
#include "rules/host.h"

namespace YAML {
class Node;
}

namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::commubo {

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

}  // namespace callbridge::commubo
