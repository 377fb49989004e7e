#include "connectors/webhook/decide.h"

#include <yaml-cpp/yaml.h>

#include <charconv>

#include "rules/config_reader.h"

namespace callbridge::webhook {

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
  for (const auto& name : report.undefined) out.undefined.push_back(name);
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

std::shared_ptr<const rules::Action> load_decide(const YAML::Node& node,
                                                 rules::ConfigReader& reader,
                                                 const std::string& rule_name) {
  const std::string what = "rule \"" + rule_name + "\": decide";
  const std::size_t errors = reader.error_count();
  if (!node.IsMap() && !node.IsScalar()) {
    reader.error(node, "\"" + what + "\" must be a status or {status: N, body: TEXT}");
    return nullptr;
  }
  // (yaml-cpp's Node::operator= writes through to the node it refers to: no reassignments.)
  const bool is_map = node.IsMap();
  if (is_map) reader.check_keys(node, {"status", "body"}, "decide");
  const YAML::Node status_node = is_map ? reader.required(node, "status", "decide") : node;
  int status = 200;
  if (status_node) {
    if (auto v = reader.integer(status_node, what + ".status", 200, 599)) {
      if (*v > 200 && *v < 300)
        reader.error(status_node, "\"" + what +
                                      ".status\": must be 200 (continue the call) or 300 to 599 "
                                      "(reject it), got " +
                                      std::to_string(*v));
      status = static_cast<int>(*v);
    }
  }
  rules::Template body;
  if (is_map && node["body"])
    if (auto t = reader.template_setting(node["body"], what + ".body", rules::Destination::text))
      body = std::move(*t);
  if (reader.error_count() != errors) return nullptr;
  return std::make_shared<DecideAction>(status, std::move(body));
}

}  // namespace callbridge::webhook
