// Registers the kintone connector's config sections, typed actions and services.
#pragma once

#include "rules/registry.h"

namespace callbridge::kintone {

void register_connector(rules::Registry& registry);

}  // namespace callbridge::kintone
