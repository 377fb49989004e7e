// Every connector callbridge ships, registered in one place.
#pragma once

#include "rules/registry.h"

namespace callbridge::bridge {

// The registry `validate`, `simulate` and `serve` load configurations with.
const rules::Registry& connector_registry();

}  // namespace callbridge::bridge
