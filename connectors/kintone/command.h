// `callbridge directory-sync`: asks the running bridge to sync the customer directory now.
#pragma once

#include "rules/registry.h"

namespace callbridge::kintone {

rules::Command directory_sync_command();

}  // namespace callbridge::kintone
