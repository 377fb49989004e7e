#include "bridge/connectors.h"

#include "connectors/clock/register.h"
#include "connectors/commubo/register.h"
#include "connectors/escalation/register.h"
#include "connectors/kintone/register.h"
#include "connectors/webhook/register.h"

namespace callbridge::bridge {

const rules::Registry& connector_registry() {
  static const rules::Registry registry = [] {
    rules::Registry r;
    kintone::register_connector(r);
    clock::register_connector(r);
    commubo::register_connector(r);
    webhook::register_connector(r);
    escalation::register_connector(r);
    return r;
  }();
  return registry;
}

}  // namespace callbridge::bridge
