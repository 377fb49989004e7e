// The fake kintone's clock and time format: kintone writes times as 2026-11-22T10:15:00Z (UTC,
// whole seconds) and its query language reads dates, times and offsets.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace callbridge::testing::kintone_fake {

long long floor_div(long long a, long long b);

// Seconds since the epoch as kintone writes a time (2026-11-22T10:15:00Z) or a date.
std::string format_time(long long seconds);
std::string format_date(long long seconds);

struct TimeValue {
  long long seconds;
  bool whole_day;  // "2026-11-22": the query compares against the whole (UTC) day
};

// 2026-11-22, 2026-11-22T10:15Z, 2026-11-22T10:15:00Z, ...:00.000Z, ...+09:00
std::optional<TimeValue> parse_time(std::string_view s);

// How `t` (seconds) compares with `v`: -1, 0 or 1; a whole day holds every second of it.
int compare_time(long long t, const TimeValue& v);

}  // namespace callbridge::testing::kintone_fake
