// Registers the clock connector: the `clock:` section and the service adding NOW_* variables.
#pragma once

#include "rules/registry.h"

namespace callbridge::clock {

void register_connector(rules::Registry& registry);

}  // namespace callbridge::clock
