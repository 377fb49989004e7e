#include "connectors/commubo/config.h"

#include <yaml-cpp/yaml.h>

#include "connectors/commubo/action.h"
#include "rules/config_reader.h"

namespace callbridge::commubo {

std::shared_ptr<const rules::Section> load_commubo_section(const YAML::Node& node,
                                                           rules::ConfigReader& reader) {
  auto settings = std::make_shared<CommuboSettings>();
  if (node.IsNull()) return settings;  // `commubo:` alone: the defaults
  if (!reader.expect_map(node, "commubo")) return nullptr;
  const std::size_t errors = reader.error_count();
  reader.check_keys(node, {"deadline_ms", "default_status", "default_body", "on_error_status"},
                    "commubo");
  if (auto n = node["deadline_ms"])
    if (auto v = reader.integer(n, "commubo.deadline_ms", 100, 10000))
      settings->deadline = std::chrono::milliseconds(*v);
  auto status = [&](const char* key, int& out) {
    if (auto n = node[key])
      if (auto v = reader.integer(n, std::string("commubo.") + key, 200, 599)) {
        if (*v > 200 && *v < 300)
          reader.error(n,
                       std::string("\"commubo.") + key +
                           "\": must be 200 (continue the call) or 300 to 599 (reject it), got " +
                           std::to_string(*v));
        else
          out = static_cast<int>(*v);
      }
  };
  status("default_status", settings->default_status);
  status("on_error_status", settings->on_error_status);
  if (auto n = node["default_body"])
    if (auto v = reader.string_setting(n, "commubo.default_body")) settings->default_body = *v;
  if (reader.error_count() != errors) return nullptr;
  return settings;
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

}  // namespace callbridge::commubo
