#include "connectors/escalation/action.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "connectors/escalation/pigeon_client.h"
#include "connectors/escalation/service.h"

namespace callbridge::escalation {

EscalateAction::EscalateAction(std::string rule, CallFlow callflow, Guidance guidance,
                               std::vector<ParameterSpec> parameters)
    : rule_(std::move(rule)),
      callflow_(std::move(callflow)),
      guidance_(std::move(guidance)),
      parameters_(std::move(parameters)) {}

std::string EscalateAction::describe() const {
  std::string flow = callflow_.id.empty() ? "an inline call flow" : "call flow " + callflow_.id;
  std::string g = guidance_.id.empty() ? "an inline guidance" : "guidance " + guidance_.id;
  return "escalate " + flow + " with " + g;
}

void EscalateAction::run(rules::ActionContext& ctx, rules::RuleOutcome& out) const {
  Parameters shown_values;
  rules::RenderReport report;
  for (const auto& p : parameters_)
    shown_values[p.name] = ctx.secrets.redact(p.value.render(ctx.call.vars, report, true));
  out.note_undefined(report);
  nlohmann::json params = nlohmann::json::object();
  for (const auto& [k, v] : shown_values) params[k] = v;
  nlohmann::json shown_body{{"callflow", callflow_.id.empty() ? pigeon_callflow(callflow_)
                                                              : nlohmann::json(callflow_.id)},
                            {"guidance", guidance_.id.empty() ? pigeon_guidance(guidance_)
                                                              : nlohmann::json(guidance_.id)},
                            {"parameters", params}};
  http::Request shown;
  shown.method = "POST";
  shown.url = "escalation://chain/start";
  shown.body = shown_body.dump();
  out.request = shown;
  if (!report.error.empty()) {
    out.status = rules::RuleStatus::failed;
    out.error = report.error;
    return;
  }
  auto* service = ctx.services ? ctx.services->find<EscalationService>("escalation") : nullptr;
  if (!ctx.transport || !ctx.services) return;  // dry run: shown, not started
  if (!service) {
    out.status = rules::RuleStatus::failed;
    out.error = "the escalation service is not running";
    out.retryable = false;
    return;
  }
  if (!ctx.before_send(shown)) {
    out.status = rules::RuleStatus::failed;
    out.error = "not sent: the journal could not record the attempt";
    return;
  }
  ChainRequest request;
  request.callflow = callflow_;
  request.guidance = guidance_;
  // The chain is journaled and its messages are shown in its history: secrets never go there, so
  // a `${ENV}` value in a parameter arrives as [secret].
  request.parameters = std::move(shown_values);
  request.origin_call_id = ctx.call.call_id;
  request.origin_rule = rule_;
  std::string error;
  auto chain = service->start_chain(std::move(request), error);
  out.sent = true;
  http::Outcome response;
  response.kind = http::OutcomeKind::response;
  if (!chain) {
    response.status = 503;
    response.body =
        nlohmann::json{{"error", {{"code", "escalation_unavailable"}, {"message", error}}}}.dump();
    out.status = rules::RuleStatus::http_error;
    out.error = "escalation not started: " + error;
    out.retryable = true;  // nothing was started
    out.response = response;
    return;
  }
  response.status = 202;
  response.body = nlohmann::json{{"resultId", chain->id}}.dump();
  out.status = rules::RuleStatus::succeeded;
  out.extracted["ESCALATION_CHAIN_ID"] = chain->id;
  ctx.call.vars["ESCALATION_CHAIN_ID"] = chain->id;
  out.response = response;
}

}  // namespace callbridge::escalation
