// The JSON Schema against the loader it is generated from: the same keys at every path, nested
// ones included, checked through the loader's own "unknown key ...; known: ..." reports.
#include "rules/config_schema.h"

#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "bridge/app.h"
#include "bridge/connectors.h"
#include "rules/config_reader.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge;
using json = nlohmann::ordered_json;

namespace {

// What `callbridge` loads files with: the connectors and the bridge's own sections.
const rules::Registry& registry() {
  static const rules::Registry r = bridge::with_bridge_sections(bridge::connector_registry());
  return r;
}

const json& schema() {
  static const json s = rules::config_schema(registry());
  return s;
}

YAML::Node at(const std::vector<std::string>& segments, std::size_t i, const YAML::Node& value) {
  if (i == segments.size()) return value;
  if (segments[i] == "[]") {
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(at(segments, i + 1, value));
    return list;
  }
  YAML::Node map(YAML::NodeType::Map);
  map[segments[i]] = at(segments, i + 1, value);
  return map;
}

// The keys the loader names as known when it meets an unknown one in a mapping at `path`
// (`extra` are keys given beside it, e.g. `type: basic`). Empty when it reports none.
std::set<std::string> loader_known_keys(const std::string& path, const YAML::Node& extra) {
  YAML::Node map = YAML::Clone(extra);
  if (!map.IsMap()) map = YAML::Node(YAML::NodeType::Map);
  map["no_such_key_for_the_test"] = "x";
  YAML::Node root = at(rules::split_path(path), 0, map);
  auto result = rules::load_config_node(
      root, "t.yaml", [](std::string_view) { return std::optional<std::string>{}; }, registry(),
      nullptr);
  std::set<std::string> known;
  for (const auto& d : result.errors) {
    auto unknown = d.message.find("no_such_key_for_the_test\"; known: ");
    if (d.message.rfind("unknown key", 0) != 0 || unknown == std::string::npos) continue;
    std::string list = d.message.substr(d.message.find("known: ", unknown) + 7);
    std::size_t start = 0;
    while (start <= list.size()) {
      auto comma = list.find(", ", start);
      known.insert(list.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 2;
    }
  }
  return known;
}

struct ObjectAt {
  std::string path;
  const json* schema;
};

// Every object schema with properties, by path (`[]` for list items), nested ones included.
void objects(const json& s, const std::string& path, std::vector<ObjectAt>& out) {
  if (s.contains("properties")) {
    out.push_back({path, &s});
    for (const auto& [key, sub] : s["properties"].items())
      objects(sub, path.empty() ? key : path + "." + key, out);
  }
  if (s.contains("items")) objects(s["items"], path + "[]", out);
  for (const char* alt : {"anyOf", "oneOf"})
    if (s.contains(alt))
      for (const auto& sub : s[alt])
        if (!sub.contains("required")) objects(sub, path, out);  // not the {file: PATH} form
}

}  // namespace

TEST_CASE("the schema has the loader's keys at every path, nested ones included", "[schema]") {
  std::vector<ObjectAt> all;
  objects(schema(), "", all);
  REQUIRE(all.size() > 30);
  for (const auto& object : all) {
    std::set<std::string> in_schema;
    for (const auto& [key, sub] : (*object.schema)["properties"].items()) in_schema.insert(key);
    std::set<std::string> in_loader = loader_known_keys(object.path, YAML::Node());
    // A mapping whose keys depend on a choice (request.auth's type): the union over its values.
    for (const auto& [key, sub] : (*object.schema)["properties"].items()) {
      if (!sub.contains("enum")) continue;
      for (const auto& value : sub["enum"]) {
        if (!value.is_string()) continue;
        YAML::Node extra(YAML::NodeType::Map);
        extra[key] = value.get<std::string>();
        for (const auto& k : loader_known_keys(object.path, extra)) in_loader.insert(k);
      }
    }
    INFO("path: " << (object.path.empty() ? "(top level)" : object.path));
    CHECK(in_loader == in_schema);
  }
}

TEST_CASE("every key of every sample is in the schema", "[schema]") {
  std::function<void(const YAML::Node&, const json&, const std::string&)> walk =
      [&](const YAML::Node& node, const json& s, const std::string& path) {
        if (node.IsMap()) {
          const json* object = &s;
          for (const char* alt : {"anyOf", "oneOf"})
            if (s.contains(alt))
              for (const auto& sub : s[alt])
                if (sub.contains("properties")) object = &sub;
          if (!object->contains("properties")) return;  // free-form mapping (headers, fields)
          for (auto it = node.begin(); it != node.end(); ++it) {
            std::string key = it->first.Scalar();
            INFO("key " << path << "." << key);
            REQUIRE((*object)["properties"].contains(key));
            walk(it->second, (*object)["properties"][key], path + "." + key);
          }
        } else if (node.IsSequence() && s.contains("items")) {
          for (const auto& item : node) walk(item, s["items"], path + "[]");
        }
      };
  int files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(CALLBRIDGE_SOURCE_DIR) + "/samples")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    INFO(entry.path().string());
    walk(YAML::LoadFile(entry.path().string()), schema(), "");
  }
  CHECK(files >= 10);
}

TEST_CASE("every key in the schema has a description", "[schema]") {
  std::vector<ObjectAt> all;
  objects(schema(), "", all);
  for (const auto& object : all)
    for (const auto& [key, sub] : (*object.schema)["properties"].items()) {
      INFO(object.path << "." << key);
      CHECK(sub.contains("description"));
    }
  const json& rule = schema()["properties"]["rules"]["items"]["properties"];
  CHECK(rule["event"]["description"].get<std::string>().find("イベント種別") != std::string::npos);
  CHECK(rule["request"]["properties"]["body"]["description"].get<std::string>().find(
            "リクエストボディ") != std::string::npos);
}

TEST_CASE("every written description names a path of the schema", "[schema]") {
  std::vector<ObjectAt> all;
  objects(schema(), "", all);
  std::set<std::string> paths;
  for (const auto& object : all)
    for (const auto& [key, sub] : (*object.schema)["properties"].items())
      paths.insert(object.path.empty() ? key : object.path + "." + key);
  for (const auto& path : rules::described_paths(registry())) {
    if (path.size() > 2 && path.compare(path.size() - 2, 2, "[]") == 0) continue;  // list items
    INFO(path);
    CHECK(paths.count(path) == 1);
  }
}

TEST_CASE("the schema carries the loader's bounds and choices", "[schema]") {
  const json& p = schema()["properties"];
  CHECK(p["storage"]["properties"]["retention_days"]["minimum"] == 1);
  CHECK(p["storage"]["properties"]["retention_days"]["maximum"] == 3650);
  CHECK(p["storage"]["properties"]["fsync"]["type"] == "boolean");
  const json& auth = p["rules"]["items"]["properties"]["request"]["properties"]["auth"];
  CHECK(auth["properties"]["type"]["enum"] ==
        json::array({"kintone-token", "kintone-password", "basic", "bearer"}));
  CHECK(auth["properties"].contains("login"));  // a key of the kintone-password type only
  CHECK(auth["additionalProperties"] == false);
}

TEST_CASE("callbridge schema prints the schema", "[schema][cli]") {
  auto r = testing::run_process({CALLBRIDGE_BINARY, "schema"});
  REQUIRE(r.exit_code == 0);
  auto printed = json::parse(r.out);
  CHECK(printed == schema());
  CHECK(printed["$schema"] == "https://json-schema.org/draft/2020-12/schema");
}

TEST_CASE("a required choice that is missing is reported, not a crash", "[schema][loader]") {
  // Probing the loader for the schema found this: `choice(required(...))` on an absent key.
  auto result = rules::load_config_text("escalation:\n  dialer: {}\n", "t.yaml", rules::process_env,
                                        registry());
  REQUIRE(!result.config);
  bool reported = false;
  for (const auto& d : result.errors)
    reported |= d.message.find("missing required key \"type\"") != std::string::npos;
  CHECK(reported);
}

TEST_CASE("a kintone mention without code is reported, not a crash", "[schema][kintone]") {
  // Found by probing the loader: the mention's node was overwritten with a missing one.
  auto result = rules::load_config_text(
      "kintone:\n  connections:\n    main: {url: \"https://example.cybozu.com\", api_token: "
      "abcdefghijklmnop}\nrules:\n  - name: a\n    event: inbound\n    kintone: {app: 1, op: "
      "comment, id: \"1\", comment: x, mentions: [{type: USER}]}\n",
      "t.yaml", rules::process_env, registry());
  REQUIRE(!result.config);
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].message == "\"kintone.mentions\" is missing required key \"code\"");
}
