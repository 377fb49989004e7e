#include "connectors/escalation/register.h"

#include "connectors/escalation/config.h"
#include "connectors/escalation/service.h"

namespace callbridge::escalation {

void register_connector(rules::Registry& registry) {
  registry.add_section("escalation", load_section);
  registry.add_action("escalate", load_action);
  registry.add_service("escalation", make_service);
}

}  // namespace callbridge::escalation
