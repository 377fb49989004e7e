// The running escalation connector: the chain engine with its dialer (or Kompira Pigeon), the
// `escalation.finished` event back into the originating call, the Pigeon-compatible API
// (chain/invoke, results/{resultId}, chain/abort), chain history and metrics.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "connectors/escalation/config.h"
#include "connectors/escalation/engine.h"
#include "rules/host.h"

namespace callbridge::escalation {

class EscalationService final : public rules::Service {
 public:
  // `timers` null: the service runs its own ThreadTimerQueue with `section.workers` workers.
  EscalationService(const EscalationSettings& section, rules::Host& host,
                    TimerQueue* timers = nullptr);
  // The service with its routes mounted through `host` (when the section's `api` is on).
  static std::shared_ptr<EscalationService> create(const EscalationSettings& section,
                                                   rules::Host& host, TimerQueue* timers = nullptr);
  ~EscalationService() override;

  void start() override;  // continues the chains stored before a restart
  void stop() override;
  void metrics(std::string& out) const override;

  std::optional<ChainState> start_chain(ChainRequest request, std::string& error);
  Engine& engine() { return *engine_; }
  Dialer* dialer() { return dialer_.get(); }

  // The Pigeon-compatible routes and /v1/escalation/*: invoke, result, abort, chains, chain,
  // definitions, dial result. Their handlers, below, are also callable directly.
  std::vector<rules::Route> routes();
  void handle_invoke(const rules::HttpRequest& req, rules::HttpResponse& res);
  void handle_result(const rules::HttpRequest& req, rules::HttpResponse& res);
  void handle_abort(const rules::HttpRequest& req, rules::HttpResponse& res);
  void handle_chains(const rules::HttpRequest& req, rules::HttpResponse& res);
  void handle_chain(const rules::HttpRequest& req, rules::HttpResponse& res);
  // GET /v1/escalation/definitions: the configured call flows (contacts, loops) and guidances
  // (message, keys, the {{parameters}} they use), for starting a chain by hand.
  void handle_definitions(const rules::HttpRequest& req, rules::HttpResponse& res);
  void handle_dial_result(const rules::HttpRequest& req, rules::HttpResponse& res);

  // The event a finished chain submits into its call.
  static rules::EventInput finished_event(const ChainState& state);

 private:
  bool submit_finished(const ChainState& state);

  EscalationSettings section_;
  rules::EventSink& events_;
  rules::InputLimits limits_;
  std::unique_ptr<ThreadTimerQueue> own_timers_;
  TimerQueue& timers_;
  KeyValueChainStore store_;
  std::unique_ptr<Dialer> dialer_;
  std::unique_ptr<PigeonClient> pigeon_;
  std::unique_ptr<Engine> engine_;
  bool stopped_ = false;
};

std::shared_ptr<rules::Service> make_service(const rules::Config& config, rules::Host& host);

}  // namespace callbridge::escalation
