// The `kintone:` section of callbridge.yaml, validated once at load: named connections (domain,
// guest space, credentials, limits) and the optional customer directory.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "connectors/kintone/client.h"
#include "connectors/kintone/directory.h"
#include "connectors/kintone/oauth.h"
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

}  // namespace callbridge::kintone
