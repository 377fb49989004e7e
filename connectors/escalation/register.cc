#include "connectors/escalation/register.h"

#include "connectors/escalation/config.h"
#include "connectors/escalation/service.h"
#include "connectors/escalation/store.h"

namespace callbridge::escalation {

void register_connector(rules::Registry& registry) {
  registry.add_section("escalation", load_section);
  registry.add_action("escalate", load_action);
  registry.add_service("escalation", make_service);
  registry.add_history_view(chain_history_view());
  registry.add_description("rules[].escalate",
                           "Start an escalation chain: call flow, guidance, parameters.");
  registry.add_description(
      "escalation",
      "Escalation chains: contacts, call flows, guidances, dialer (docs/escalation.md).");
  registry.add_description("escalation.contacts", "連絡先: id, name (表示名), phone (電話番号).");
  registry.add_description(
      "escalation.callflows",
      "コールフロー: contacts in call order (架電順), loop_limit (最大ループ回数).");
  registry.add_description("escalation.guidances",
                           "ガイダンス: message template and key responses (応答).");
  registry.add_description("escalation.dialer",
                           "How calls are placed: simulate, webhook or pigeon.");
}

}  // namespace callbridge::escalation
