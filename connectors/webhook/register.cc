#include "connectors/webhook/register.h"

#include "connectors/webhook/config.h"
#include "connectors/webhook/service.h"

namespace callbridge::webhook {

void register_connector(rules::Registry& registry) {
  registry.add_section("webhooks", load_webhooks_section);
  registry.add_description("webhooks",
                           "Webhook sources: how each PBX's requests become call events.");
  registry.add_service(
      "webhooks",
      [](const rules::Config& config, rules::Host& host) -> std::shared_ptr<rules::Service> {
        auto settings = config.section<WebhookSettings>("webhooks");
        if (!settings || settings->sources.empty()) return nullptr;
        auto service = std::make_shared<WebhookService>(
            settings, host.store, host.events, std::chrono::system_clock::now, host.limits);
        for (auto& route : service->routes()) host.add_route(service, std::move(route));
        return service;
      });
}

}  // namespace callbridge::webhook
