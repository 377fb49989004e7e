#include "connectors/kintone/register.h"

#include "connectors/kintone/command.h"
#include "connectors/kintone/config.h"
#include "connectors/kintone/rest_request.h"
#include "connectors/kintone/service.h"

namespace callbridge::kintone {

void register_connector(rules::Registry& registry) {
  registry.add_section("kintone", load_section);
  registry.add_action("kintone", load_action);
  registry.add_auth_kind("kintone-token", load_token_auth);
  registry.add_auth_kind("kintone-password", load_password_auth);
  registry.add_request_inspector(std::make_shared<RestRequestInspector>());
  registry.add_command(directory_sync_command());
  // The auth kinds it adds, in the text of the raw request's `auth` key.
  registry.add_description("rules[].request.auth",
                           "Computed credentials (kintone token or password, basic, bearer).");
  registry.add_description(
      "rules[].kintone", "A kintone action: find, get, create, update, upsert, comment, history.");
  registry.add_description("kintone",
                           "kintone connections and the customer directory (docs/kintone.md).");
  registry.add_description("kintone.connections",
                           "Named kintone connections: URL and credentials.");
  registry.add_description("kintone.directory",
                           "Customer directory synced from a kintone app for caller lookup.");
  registry.add_service(
      KintoneService::kName,
      [](const rules::Config& config, rules::Host& host) -> std::shared_ptr<rules::Service> {
        auto settings = config.section<KintoneSettings>("kintone");
        if (!settings) return nullptr;
        auto service = std::make_shared<KintoneService>(settings, host.transport, &host.store,
                                                        KintoneService::Log{}, host.leases);
        for (auto& route : service->routes()) host.add_route(service, std::move(route));
        return service;
      });
}

}  // namespace callbridge::kintone
