#include "connectors/commubo/action.h"

#include <charconv>

namespace callbridge::commubo {

std::optional<int> parse_decision_status(std::string_view text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value == 200 || (value >= 300 && value <= 599)) return value;
  return std::nullopt;
}

void DecideAction::run(rules::ActionContext& ctx, rules::RuleOutcome& out) const {
  rules::RenderReport report;
  std::string body = body_.empty() ? std::string() : body_.render(ctx.call.vars, report);
  out.note_undefined(report);
  if (!report.error.empty()) {
    out.status = rules::RuleStatus::failed;
    out.error = "decide body: " + ctx.secrets.redact(report.error);
    out.retryable = false;
    return;
  }
  const std::string status = std::to_string(status_);
  ctx.call.vars[std::string(kDecisionStatus)] = status;
  ctx.call.vars[std::string(kDecisionBody)] = body;
  out.extracted[std::string(kDecisionStatus)] = status;
  out.extracted[std::string(kDecisionBody)] = ctx.secrets.redact(body);
  out.sent = false;  // nothing leaves the bridge
  out.status = rules::RuleStatus::succeeded;
}

std::string DecideAction::describe() const {
  return "decide " + std::to_string(status_) + (status_ == 200 ? " (continue)" : " (reject)");
}

}  // namespace callbridge::commubo
