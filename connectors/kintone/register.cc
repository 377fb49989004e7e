#include "connectors/kintone/register.h"

namespace callbridge::kintone {

void register_connector(rules::Registry& /*registry*/) {}

}  // namespace callbridge::kintone
