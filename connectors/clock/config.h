// The `clock:` section: the time zone and holidays the NOW_* variables are computed in.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "connectors/clock/time_zone.h"
#include "rules/config.h"

namespace YAML {
class Node;
}
namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::clock {

// Top-level `clock:` section.
struct ClockSettings final : rules::Section {
  ClockSettings();
  TimeZone zone;
  std::set<std::string> holidays;  // YYYY-MM-DD, in the zone
};

std::shared_ptr<const rules::Section> load_clock_section(const YAML::Node& node,
                                                         rules::ConfigReader& reader);

}  // namespace callbridge::clock
