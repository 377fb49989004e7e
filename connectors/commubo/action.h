// The `decide` typed action: a rule's answer to a caller that waits for one (commubo's inbound
// callback). It sets DECISION_STATUS and DECISION_BODY in the call; no network, idempotent.
// Loaded by config.h's load_decide.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "rules/action.h"
#include "rules/template.h"

namespace YAML {
class Node;
}

namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::commubo {

inline constexpr std::string_view kDecisionStatus = "DECISION_STATUS";
inline constexpr std::string_view kDecisionBody = "DECISION_BODY";

// 200, or 300 to 599; nullopt otherwise.
std::optional<int> parse_decision_status(std::string_view text);

class DecideAction final : public rules::Action {
 public:
  DecideAction(int status, rules::Template body) : status_(status), body_(std::move(body)) {}
  void run(rules::ActionContext& ctx, rules::RuleOutcome& out) const override;
  bool idempotent() const override { return true; }
  std::string describe() const override;
  int status() const { return status_; }

 private:
  int status_;
  rules::Template body_;  // rendered with the call's variables
};

}  // namespace callbridge::commubo
