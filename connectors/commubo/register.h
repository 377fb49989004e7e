// Registers the commubo connector: the `commubo:` section, the `decide:` action and the
// inbound-callback service.
#pragma once

#include "rules/registry.h"

namespace callbridge::commubo {

void register_connector(rules::Registry& registry);

}  // namespace callbridge::commubo
