#include "tests/fakes/fake_kintone_clock.h"

#include <cstdio>

namespace callbridge::testing::kintone_fake {

long long floor_div(long long a, long long b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

namespace {

long long days_from_civil(long long y, long long m, long long d) {
  y -= m <= 2;
  const long long era = floor_div(y, 400);
  const long long yoe = y - era * 400;
  const long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(long long z, long long& y, long long& m, long long& d) {
  z += 719468;
  const long long era = floor_div(z, 146097);
  const long long doe = z - era * 146097;
  const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const long long mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = yoe + era * 400 + (m <= 2);
}

}  // namespace

std::string format_time(long long seconds) {
  long long day = floor_div(seconds, 86400), rest = seconds - day * 86400, y, m, d;
  civil_from_days(day, y, m, d);
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", y, m, d,
                rest / 3600, rest / 60 % 60, rest % 60);
  return buffer;
}

std::string format_date(long long seconds) {
  return format_time(seconds).substr(0, 10);
}

// 2026-11-22, 2026-11-22T10:15Z, 2026-11-22T10:15:00Z, ...:00.000Z, ...+09:00
std::optional<TimeValue> parse_time(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&](std::size_t n) -> std::optional<long long> {
    if (i + n > s.size()) return std::nullopt;
    long long v = 0;
    for (std::size_t k = 0; k < n; ++k) {
      char c = s[i + k];
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    i += n;
    return v;
  };
  auto take = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  auto y = digits(4);
  if (!y || !take('-')) return std::nullopt;
  auto mo = digits(2);
  if (!mo || !take('-')) return std::nullopt;
  auto d = digits(2);
  if (!d || *mo < 1 || *mo > 12 || *d < 1 || *d > 31) return std::nullopt;
  long long day_start = days_from_civil(*y, *mo, *d) * 86400;
  if (i == s.size()) return TimeValue{day_start, true};
  if (!take('T')) return std::nullopt;
  auto h = digits(2);
  if (!h || !take(':')) return std::nullopt;
  auto mi = digits(2);
  if (!mi) return std::nullopt;
  long long sec = 0;
  if (take(':')) {
    auto v = digits(2);
    if (!v) return std::nullopt;
    sec = *v;
    if (take('.'))
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  }
  long long offset = 0;
  if (take('Z')) {
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    long long sign = s[i] == '-' ? -1 : 1;
    ++i;
    auto oh = digits(2);
    if (!oh) return std::nullopt;
    take(':');
    auto om = digits(2);
    if (!om) return std::nullopt;
    offset = sign * (*oh * 3600 + *om * 60);
  }
  if (i != s.size() || *h > 23 || *mi > 59 || sec > 59) return std::nullopt;
  return TimeValue{day_start + *h * 3600 + *mi * 60 + sec - offset, false};
}

int compare_time(long long t, const TimeValue& v) {
  if (!v.whole_day) return t < v.seconds ? -1 : t > v.seconds ? 1 : 0;
  return t < v.seconds ? -1 : t >= v.seconds + 86400 ? 1 : 0;
}

}  // namespace callbridge::testing::kintone_fake
