// The kintone connector's configuration, validated once at load: the `kintone:` section (named
// connections with domain, guest space, credentials and limits; the optional customer directory)
// and the loader of the `kintone:` rule action (its runtime is in action.h).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "connectors/kintone/client.h"
#include "connectors/kintone/directory.h"
#include "connectors/kintone/oauth.h"
#include "rules/action.h"
#include "rules/config.h"

namespace YAML {
class Node;
}
namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::kintone {

struct ConnectionSpec {
  Connection connection;  // auth.oauth is attached by the service (it needs the store)
  std::optional<OAuthSettings> oauth;
};

class KintoneSettings final : public rules::Section {
 public:
  std::map<std::string, ConnectionSpec, std::less<>> connections;
  std::optional<DirectorySpec> directory;

  const ConnectionSpec* connection(std::string_view name) const;
  std::string names() const;  // "a, b", for error messages
};

std::shared_ptr<const rules::Section> load_section(const YAML::Node& node,
                                                   rules::ConfigReader& reader);

// The `kintone:` key of a rule: a KintoneAction checked against the loaded section.
std::shared_ptr<const rules::Action> load_action(const YAML::Node& node,
                                                 rules::ConfigReader& reader,
                                                 const std::string& rule_name);

}  // namespace callbridge::kintone
