#include "bridge/connectors.h"

#include "bridge/console_auth.h"
#include "connectors/escalation/register.h"
#include "connectors/kintone/register.h"
#include "connectors/webhook/register.h"

namespace callbridge::bridge {

const rules::Registry& connector_registry() {
  static const rules::Registry registry = [] {
    rules::Registry r;
    kintone::register_connector(r);
    webhook::register_connector(r);
    escalation::register_connector(r);
    r.add_section("console", load_console_section);  // the web console's users, not a connector
    return r;
  }();
  return registry;
}

}  // namespace callbridge::bridge
