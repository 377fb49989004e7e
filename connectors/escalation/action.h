// What the `escalate:` rule action does at run time: starts a chain in the running escalation
// service (or shows what it would start, in a dry run). Loaded by config.h's load_action.
#pragma once

#include <string>
#include <vector>

#include "connectors/escalation/model.h"
#include "rules/action.h"
#include "rules/template.h"

namespace callbridge::escalation {

// `escalate:` in a rule: starts a chain for the call, with parameters rendered from its
// variables. Sets ESCALATION_CHAIN_ID; the response body is {"resultId": "..."} (status 202).
class EscalateAction final : public rules::Action {
 public:
  struct ParameterSpec {
    std::string name;
    rules::Template value;
  };
  EscalateAction(std::string rule, CallFlow callflow, Guidance guidance,
                 std::vector<ParameterSpec> parameters);
  void run(rules::ActionContext& ctx, rules::RuleOutcome& out) const override;
  bool idempotent() const override { return false; }  // a second chain calls people twice
  std::string describe() const override;

  const CallFlow& callflow() const { return callflow_; }
  const Guidance& guidance() const { return guidance_; }

 private:
  std::string rule_;
  CallFlow callflow_;
  Guidance guidance_;
  std::vector<ParameterSpec> parameters_;
};

}  // namespace callbridge::escalation
