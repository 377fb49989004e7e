// The JSON Schema of the configuration file, built by probing the loader itself: every mapping
// the loader checks, with the keys it allows, and every value with the kind, bounds and choices
// it reads. One source of truth: a key added to any loader through ConfigReader appears here.
#pragma once

#include <nlohmann/json.hpp>

#include "rules/registry.h"

namespace callbridge::rules {

// The draft 2020-12 schema of a configuration file for the connectors in `registry`.
nlohmann::ordered_json config_schema(const Registry& registry);

// A key path as the schema's tests and descriptions write it (`rules[].request.url`), split into
// its keys, with `[]` for "any item of the list".
std::vector<std::string> split_path(const std::string& path);

// The paths that have a written description, the core's and the connectors' (the rest are
// described by kind and bounds).
std::vector<std::string> described_paths(const Registry& registry);

}  // namespace callbridge::rules
