// Registers the escalation connector's config sections, typed actions and services.
#pragma once

#include "rules/registry.h"

namespace callbridge::escalation {

void register_connector(rules::Registry& registry);

}  // namespace callbridge::escalation
