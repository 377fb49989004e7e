// Business hours: the local date and time, in a configured time zone, as variables every event's
// gates can test (NOW_DATE, NOW_TIME, NOW_HHMM, NOW_WEEKDAY, NOW_HOLIDAY). libstdc++ 12 has no
// std::chrono::zoned_time, so zones are read from the system's TZif files or written as fixed
// offsets.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rules/config.h"

namespace YAML {
class Node;
}

namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::clock {

// A time zone: a fixed UTC offset ("+09:00", "UTC") or an IANA name read from a TZif file.
class TimeZone {
 public:
  static TimeZone fixed(std::string name, std::chrono::seconds offset);
  // "Asia/Tokyo", "+09:00", "-0530", "UTC". nullopt with `error` when unknown or unreadable.
  static std::optional<TimeZone> load(std::string_view name, std::string& error,
                                      const std::string& zoneinfo_dir = "/usr/share/zoneinfo");
  // Parses TZif data (RFC 8536, versions 1 to 4).
  static std::optional<TimeZone> from_tzif(std::string name, std::string_view data,
                                           std::string& error);

  std::chrono::seconds offset_at(std::chrono::system_clock::time_point t) const;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<long long> transitions_;   // UTC seconds, ascending
  std::vector<int> transition_offsets_;  // the offset from each transition on
  int initial_offset_ = 0;               // before the first transition
  std::optional<int> footer_offset_;     // after the last one, when the zone has no DST
};

using WallClock = std::function<std::chrono::system_clock::time_point()>;

// NOW_DATE 2026-04-01, NOW_TIME 09:30, NOW_HHMM 0930, NOW_WEEKDAY wed, NOW_HOLIDAY 1/0.
rules::Variables clock_variables(std::chrono::system_clock::time_point now, const TimeZone& zone,
                                 const std::set<std::string>& holidays = {});

}  // namespace callbridge::clock
