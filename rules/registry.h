// The connectors callbridge knows, registered explicitly in one function (bridge/connectors.cc):
// the top-level config sections they read, the typed rule actions they provide, and the
// services they run beside the dispatcher.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rules/action.h"
#include "rules/config.h"
#include "rules/host.h"

namespace YAML {
class Node;
}

namespace callbridge::rules {

class ConfigReader;

class Registry {
 public:
  // Loads a top-level section (`kintone:`, `escalation:`...); nullptr after reporting errors.
  using SectionLoader =
      std::function<std::shared_ptr<const Section>(const YAML::Node&, ConfigReader&)>;
  // Loads a rule's typed action from the value of its key (`kintone:`, `decide:`...).
  using ActionLoader = std::function<std::shared_ptr<const Action>(const YAML::Node&, ConfigReader&,
                                                                   const std::string& rule_name)>;
  // Builds a running service at `serve` start; nullptr when the config does not need it.
  using ServiceFactory = std::function<std::shared_ptr<Service>(const Config&, Host&)>;

  void add_section(std::string key, SectionLoader loader);
  void add_action(std::string key, ActionLoader loader);
  void add_service(std::string name, ServiceFactory factory);

  struct NamedSection {
    std::string key;
    SectionLoader load;
  };
  struct NamedAction {
    std::string key;
    ActionLoader load;
  };
  struct NamedService {
    std::string name;
    ServiceFactory make;
  };
  const std::vector<NamedSection>& sections() const { return sections_; }
  const std::vector<NamedAction>& actions() const { return actions_; }
  const std::vector<NamedService>& services() const { return services_; }
  const NamedAction* action(std::string_view key) const;

 private:
  std::vector<NamedSection> sections_;
  std::vector<NamedAction> actions_;
  std::vector<NamedService> services_;
};

}  // namespace callbridge::rules
