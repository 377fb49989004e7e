#include "connectors/clock/service.h"

namespace callbridge::clock {

void ClockService::enrich(const rules::EventInput& /*event*/, rules::Variables& vars) const {
  for (auto& [key, value] : clock_variables(now_(), settings_.zone, settings_.holidays))
    vars[key] = std::move(value);
}

bool rules_read_clock(const rules::RuleSet& rules) {
  auto reads = [](const rules::Template& t) {
    for (const auto& name : t.variables())
      if (name.rfind("NOW_", 0) == 0) return true;
    return false;
  };
  for (const auto& rule : rules.all()) {
    if (rule.when && reads(rule.when->code)) return true;
    if (reads(rule.request.url) || reads(rule.request.body)) return true;
    for (const auto& header : rule.request.headers)
      if (reads(header.value)) return true;
  }
  return false;
}

}  // namespace callbridge::clock
