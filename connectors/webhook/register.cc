#include "connectors/webhook/register.h"

namespace callbridge::webhook {

void register_connector(rules::Registry& /*registry*/) {}

}  // namespace callbridge::webhook
