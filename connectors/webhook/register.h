// Registers the webhook connector's config sections, typed actions and services.
#pragma once

#include "rules/registry.h"

namespace callbridge::webhook {

void register_connector(rules::Registry& registry);

}  // namespace callbridge::webhook
