#include "connectors/webhook/register.h"

#include "connectors/webhook/clock.h"
#include "connectors/webhook/commubo.h"
#include "connectors/webhook/decide.h"
#include "connectors/webhook/source.h"

namespace callbridge::webhook {

namespace {

// Routes hold their service, so a route can never outlive what it calls.
template <class S>
rules::Route holding(std::shared_ptr<S> service, rules::Route route) {
  route.handler = [service, inner = std::move(route.handler)](const rules::HttpRequest& request,
                                                              rules::HttpResponse& response) {
    inner(request, response);
  };
  return route;
}

}  // namespace

void register_connector(rules::Registry& registry) {
  registry.add_section("clock", load_clock_section);
  registry.add_section("commubo", load_commubo_section);
  registry.add_section("webhooks", load_webhooks_section);
  registry.add_action("decide", load_decide);

  registry.add_service(
      "clock", [](const rules::Config& config, rules::Host&) -> std::shared_ptr<rules::Service> {
        const auto* settings = config.section<ClockSettings>("clock");
        if (!settings && !rules_read_clock(*config.rules)) return nullptr;
        return std::make_shared<ClockService>(settings ? *settings : ClockSettings{});
      });

  // Always served: commubo rejects the caller's call on any answer >= 300, so a file without a
  // commubo section or rule still journals the event and answers default_status.
  registry.add_service(
      "commubo",
      [](const rules::Config& config, rules::Host& host) -> std::shared_ptr<rules::Service> {
        const auto* settings = config.section<CommuboSettings>("commubo");
        auto service = std::make_shared<CommuboService>(settings ? *settings : CommuboSettings{},
                                                        host.store, host.events, host.limits);
        host.routes.push_back(holding(service, service->route()));
        return service;
      });

  registry.add_service(
      "webhooks",
      [](const rules::Config& config, rules::Host& host) -> std::shared_ptr<rules::Service> {
        auto it = config.sections.find("webhooks");
        if (it == config.sections.end()) return nullptr;
        auto settings = std::dynamic_pointer_cast<const WebhookSettings>(it->second);
        if (!settings || settings->sources.empty()) return nullptr;
        auto service = std::make_shared<WebhookService>(
            settings, host.store, host.events, std::chrono::system_clock::now, host.limits);
        for (auto& route : service->routes()) host.routes.push_back(holding(service, route));
        return service;
      });
}

}  // namespace callbridge::webhook
