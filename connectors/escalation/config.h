// The `escalation:` section and the `escalate:` rule action, validated once at load into
// immutable typed objects (see docs/escalation.md for the YAML).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connectors/escalation/dialer.h"
#include "connectors/escalation/engine.h"
#include "connectors/escalation/model.h"
#include "connectors/escalation/pigeon_client.h"
#include "rules/action.h"
#include "rules/config.h"

namespace YAML {
class Node;
}

namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::escalation {

struct DialerConfig {
  std::string type = "simulate";  // simulate | webhook | pigeon
  SimulatedDialer::Script script;
  ScriptedAnswer fallback;  // simulate: contacts without a script (default no-answer)
  WebhookDialerSettings webhook;
  PigeonSettings pigeon;
};

class EscalationSection final : public rules::Section {
 public:
  std::map<std::string, Contact, std::less<>> contacts;
  std::map<std::string, CallFlow, std::less<>> callflows;  // contacts resolved
  std::map<std::string, Guidance, std::less<>> guidances;
  DialerConfig dialer;
  EngineSettings engine;
  int workers = 4;
  bool api = true;  // the Pigeon-compatible routes and /v1/escalation/*
};

// Loads `escalation:`; nullptr after reporting errors.
std::shared_ptr<const rules::Section> load_section(const YAML::Node& node,
                                                   rules::ConfigReader& reader);

class EscalationService;

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

std::shared_ptr<const rules::Action> load_action(const YAML::Node& node,
                                                 rules::ConfigReader& reader,
                                                 const std::string& rule_name);

}  // namespace callbridge::escalation
