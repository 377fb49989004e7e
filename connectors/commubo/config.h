// The commubo connector's configuration: the `commubo:` section (deadline and default answers)
// and the loader of the `decide:` rule action (its runtime is in action.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "rules/action.h"
#include "rules/config.h"

namespace YAML {
class Node;
}
namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::commubo {

// Top-level `commubo:` section.
struct CommuboSettings final : rules::Section {
  // commubo does not document its callback timeout; the caller hears ringing while we think, so
  // answer well inside any plausible client timeout (docs/webhooks.md explains the choice).
  std::chrono::milliseconds deadline{2000};
  int default_status = 200;   // no decide rule ran, or the deadline passed
  std::string default_body;   // empty: a JSON summary of the answer
  int on_error_status = 200;  // malformed payload or the event could not be stored
};

std::shared_ptr<const rules::Section> load_commubo_section(const YAML::Node& node,
                                                           rules::ConfigReader& reader);

// `decide: {status: 486, body: "..."}` or `decide: 486`.
std::shared_ptr<const rules::Action> load_decide(const YAML::Node& node,
                                                 rules::ConfigReader& reader,
                                                 const std::string& rule_name);

}  // namespace callbridge::commubo
