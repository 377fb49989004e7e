#include "connectors/commubo/register.h"

#include "connectors/commubo/config.h"
#include "connectors/commubo/service.h"

namespace callbridge::commubo {

void register_connector(rules::Registry& registry) {
  registry.add_section("commubo", load_commubo_section);
  registry.add_action("decide", load_decide);
  registry.add_description("rules[].decide", "Answer the commubo callback: status and body.");
  registry.add_description(
      "commubo", "The commubo callback: deadline and default answers (docs/webhooks.md).");
  // Always served: commubo rejects the caller's call on any answer >= 300, so a file without a
  // commubo section or rule still journals the event and answers default_status.
  registry.add_service(
      "commubo",
      [](const rules::Config& config, rules::Host& host) -> std::shared_ptr<rules::Service> {
        auto settings = config.section<CommuboSettings>("commubo");
        auto service = std::make_shared<CommuboService>(settings ? *settings : CommuboSettings{},
                                                        host.store, host.events, host.limits);
        host.add_route(service, service->route());
        return service;
      });
}

}  // namespace callbridge::commubo
