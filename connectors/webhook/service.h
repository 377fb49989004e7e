// The webhook sources at serve time: one route per source and method, each delivery checked
// (signature, body kind, duplicates), turned into a call event and submitted.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "connectors/webhook/config.h"
#include "rules/host.h"

namespace callbridge::webhook {

inline constexpr std::string_view kWebhookDeliveries = "webhook.deliveries";  // KeyValueStore ns

// Runs every configured source. Thread-safe.
class WebhookService final : public rules::Service {
 public:
  using Now = std::function<std::chrono::system_clock::time_point()>;

  WebhookService(std::shared_ptr<const WebhookSettings> settings, rules::KeyValueStore& store,
                 rules::EventSink& events, Now now = std::chrono::system_clock::now,
                 rules::InputLimits limits = {});

  // One route per source and method.
  std::vector<rules::Route> routes();
  void handle(const WebhookSource& source, const rules::HttpRequest& request,
              rules::HttpResponse& response);
  // Forgets deliveries older than their source's window.
  void expire_deliveries();
  void metrics(std::string& out) const override;

 private:
  enum class Claim { fresh, duplicate, in_flight, failed };
  struct Seen {
    std::string event_id, call_id, event;
  };
  // Records that this copy of delivery `key` is being stored (a claim), unless it was seen
  // within the source's window (duplicate, with what it became) or another copy is being stored
  // (waits up to 2 s for its outcome, then in_flight). failed: the journal cannot write.
  Claim claim_delivery(const WebhookSource& source, const std::string& key,
                       std::chrono::system_clock::time_point now, Seen& seen, std::string& error);

  std::shared_ptr<const WebhookSettings> settings_;
  rules::KeyValueStore& store_;
  rules::EventSink& events_;
  Now now_;
  rules::InputLimits limits_;
  std::mutex sweep_mutex_;
  std::chrono::system_clock::time_point last_sweep_{};
  mutable std::mutex metrics_mutex_;
  std::map<std::pair<std::string, std::string>, unsigned long long> counts_;  // source, outcome
};

}  // namespace callbridge::webhook
