#include "connectors/escalation/register.h"

namespace callbridge::escalation {

void register_connector(rules::Registry& /*registry*/) {}

}  // namespace callbridge::escalation
