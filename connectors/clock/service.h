// The clock's runtime: the NOW_* variables added to every event when its rules start.
#pragma once

#include <chrono>

#include "connectors/clock/config.h"
#include "connectors/clock/time_zone.h"
#include "rules/host.h"

namespace callbridge::clock {

// Adds the NOW_* variables to every event, at the time its rules start.
class ClockService final : public rules::Service {
 public:
  explicit ClockService(ClockSettings settings, WallClock now = std::chrono::system_clock::now)
      : settings_(std::move(settings)), now_(std::move(now)) {}
  void enrich(const rules::EventInput& event, rules::Variables& vars) const override;

 private:
  ClockSettings settings_;
  WallClock now_;
};

// True when a rule reads a NOW_* variable (then the clock runs even without a `clock:` section).
bool rules_read_clock(const rules::RuleSet& rules);

}  // namespace callbridge::clock
