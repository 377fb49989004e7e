#include "connectors/clock/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdio>

#include "rules/config_reader.h"

namespace callbridge::clock {

namespace {

constexpr const char* kDefaultZone = "Asia/Tokyo";

}  // namespace

ClockSettings::ClockSettings() {
  std::string error;
  auto tokyo = TimeZone::load(kDefaultZone, error);
  // Japan has kept +09:00 without DST since 1951; the fixed offset is exact if tzdata is missing.
  zone = tokyo ? *tokyo : TimeZone::fixed(kDefaultZone, std::chrono::hours(9));
}

std::shared_ptr<const rules::Section> load_clock_section(const YAML::Node& node,
                                                         rules::ConfigReader& reader) {
  auto settings = std::make_shared<ClockSettings>();
  if (node.IsNull()) return settings;
  if (!reader.expect_map(node, "clock")) return nullptr;
  const std::size_t errors = reader.error_count();
  reader.check_keys(node, {"time_zone", "holidays"}, "clock");
  if (auto n = node["time_zone"]) {
    if (auto name = reader.string_setting(n, "clock.time_zone")) {
      std::string error;
      if (auto zone = TimeZone::load(*name, error))
        settings->zone = std::move(*zone);
      else
        reader.error(n, "\"clock.time_zone\": " + error);
    }
  }
  if (auto n = node["holidays"]) {
    if (reader.expect_list(n, "clock.holidays")) {
      for (const auto& item : n) {
        auto text = reader.scalar(item, "clock.holidays");
        if (!text) continue;
        int y = 0;
        unsigned m = 0, d = 0;
        char extra = 0;
        if (text->size() != 10 ||
            std::sscanf(text->c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &extra) != 3 ||
            !std::chrono::year_month_day{std::chrono::year{y}, std::chrono::month{m},
                                         std::chrono::day{d}}
                 .ok()) {
          reader.error(item,
                       "\"clock.holidays\": must be dates as YYYY-MM-DD, got \"" + *text + "\"");
          continue;
        }
        settings->holidays.insert(*text);
      }
    }
  }
  if (reader.error_count() != errors) return nullptr;
  return settings;
}

}  // namespace callbridge::clock
