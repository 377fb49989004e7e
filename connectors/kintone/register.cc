#include "connectors/kintone/register.h"

#include "connectors/kintone/action.h"
#include "connectors/kintone/service.h"
#include "connectors/kintone/settings.h"

namespace callbridge::kintone {

void register_connector(rules::Registry& registry) {
  registry.add_section("kintone", load_section);
  registry.add_action("kintone", load_action);
  registry.add_service(
      KintoneService::kName,
      [](const rules::Config& config, rules::Host& host) -> std::shared_ptr<rules::Service> {
        auto it = config.sections.find("kintone");
        if (it == config.sections.end()) return nullptr;
        auto settings = std::dynamic_pointer_cast<const KintoneSettings>(it->second);
        if (!settings) return nullptr;
        auto service = std::make_shared<KintoneService>(settings, host.transport, &host.store);
        // Routes hold the service, so a route never outlives what it calls.
        for (auto route : service->routes()) {
          route.handler = [service, inner = std::move(route.handler)](
                              const rules::HttpRequest& request, rules::HttpResponse& response) {
            inner(request, response);
          };
          host.routes.push_back(std::move(route));
        }
        return service;
      });
}

}  // namespace callbridge::kintone
