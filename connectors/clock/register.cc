#include "connectors/clock/register.h"

#include "connectors/clock/config.h"
#include "connectors/clock/service.h"

namespace callbridge::clock {

void register_connector(rules::Registry& registry) {
  registry.add_section("clock", load_clock_section);
  registry.add_description("clock", "Time zone and holidays for the NOW_* variables.");
  registry.add_service(
      "clock", [](const rules::Config& config, rules::Host&) -> std::shared_ptr<rules::Service> {
        auto settings = config.section<ClockSettings>("clock");
        if (!settings && !rules_read_clock(*config.rules)) return nullptr;
        return std::make_shared<ClockService>(settings ? *settings : ClockSettings{});
      });
}

}  // namespace callbridge::clock
