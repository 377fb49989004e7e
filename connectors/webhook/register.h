// Registers the webhook connector: the `webhooks:` section and the service serving its sources.
#pragma once

#include "rules/registry.h"

namespace callbridge::webhook {

void register_connector(rules::Registry& registry);

}  // namespace callbridge::webhook
