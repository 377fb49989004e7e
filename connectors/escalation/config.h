// The escalation connector's configuration: the `escalation:` section and the loader of the
// `escalate:` rule action, validated once at load into immutable typed objects (see
// docs/escalation.md for the YAML).
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

// How chains place calls: in-process script, an HTTP dialer, or Kompira Pigeon's own chains.
enum class DialerType { simulate, webhook, pigeon };
std::string_view to_string(DialerType type);

struct DialerConfig {
  DialerType type = DialerType::simulate;
  SimulatedDialer::Script script;
  ScriptedAnswer fallback;  // simulate: contacts without a script (default no-answer)
  WebhookDialerSettings webhook;
  PigeonSettings pigeon;
};

class EscalationSettings final : public rules::Section {
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

// `escalate:` in a rule: an EscalateAction (action.h) with its call flow and guidance resolved.
std::shared_ptr<const rules::Action> load_action(const YAML::Node& node,
                                                 rules::ConfigReader& reader,
                                                 const std::string& rule_name);

}  // namespace callbridge::escalation
