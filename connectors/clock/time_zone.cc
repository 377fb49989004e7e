#include "connectors/clock/time_zone.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace callbridge::clock {

namespace {

// "+09:00", "+0900", "+09", "-05:30", "UTC", "Z", "GMT".
std::optional<int> parse_fixed_offset(std::string_view name) {
  if (name == "UTC" || name == "Z" || name == "GMT" || name == "Etc/UTC") return 0;
  if (name.size() < 3 || (name[0] != '+' && name[0] != '-')) return std::nullopt;
  std::string digits;
  for (std::size_t i = 1; i < name.size(); ++i) {
    if (name[i] == ':' && i == 3) continue;
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    digits += name[i];
  }
  if (digits.size() != 2 && digits.size() != 4) return std::nullopt;
  int hours = std::stoi(digits.substr(0, 2));
  int minutes = digits.size() == 4 ? std::stoi(digits.substr(2)) : 0;
  if (hours > 14 || minutes > 59) return std::nullopt;
  int offset = hours * 3600 + minutes * 60;
  return name[0] == '-' ? -offset : offset;
}

long long read_be(std::string_view data, std::size_t at, int bytes) {
  unsigned long long v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(data[at + i]);
  if (bytes == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
  return static_cast<long long>(v);
}

// The standard offset of a POSIX TZ string without DST ("JST-9", "<+0530>-5:30"); nullopt when
// it has a DST part or cannot be read.
std::optional<int> posix_fixed_offset(std::string_view tz) {
  std::size_t i = 0;
  if (i < tz.size() && tz[i] == '<') {
    i = tz.find('>');
    if (i == std::string_view::npos) return std::nullopt;
    ++i;
  } else {
    while (i < tz.size() && std::isalpha(static_cast<unsigned char>(tz[i]))) ++i;
  }
  if (i == 0 || i >= tz.size()) return std::nullopt;
  int sign = 1;
  if (tz[i] == '+' || tz[i] == '-') sign = tz[i++] == '-' ? -1 : 1;
  int parts[3] = {0, 0, 0};
  int part = 0;
  bool any = false;
  for (; i < tz.size(); ++i) {
    if (tz[i] == ':') {
      if (++part > 2) return std::nullopt;
    } else if (tz[i] >= '0' && tz[i] <= '9') {
      parts[part] = parts[part] * 10 + (tz[i] - '0');
      any = true;
    } else {
      return std::nullopt;  // a DST name follows
    }
  }
  if (!any) return std::nullopt;
  // POSIX offsets are west-positive: JST-9 is UTC+9.
  return -sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
}

}  // namespace

TimeZone TimeZone::fixed(std::string name, std::chrono::seconds offset) {
  TimeZone zone;
  zone.name_ = std::move(name);
  zone.initial_offset_ = static_cast<int>(offset.count());
  zone.footer_offset_ = zone.initial_offset_;
  return zone;
}

std::optional<TimeZone> TimeZone::from_tzif(std::string name, std::string_view data,
                                            std::string& error) {
  auto fail = [&](const std::string& why) -> std::optional<TimeZone> {
    error = "time zone \"" + name + "\": " + why;
    return std::nullopt;
  };
  if (data.size() < 44 || data.substr(0, 4) != "TZif") return fail("not a TZif file");
  auto block = [&](std::size_t at, int time_bytes, std::size_t& end, TimeZone* out) -> bool {
    if (data.size() < at + 44) return false;
    long long isut = read_be(data, at + 20, 4), isstd = read_be(data, at + 24, 4),
              leap = read_be(data, at + 28, 4), timecnt = read_be(data, at + 32, 4),
              typecnt = read_be(data, at + 36, 4), charcnt = read_be(data, at + 40, 4);
    if (isut < 0 || isstd < 0 || leap < 0 || timecnt < 0 || typecnt <= 0 || charcnt < 0)
      return false;
    std::size_t p = at + 44;
    std::size_t size = static_cast<std::size_t>(timecnt) * (time_bytes + 1) +
                       static_cast<std::size_t>(typecnt) * 6 + charcnt +
                       static_cast<std::size_t>(leap) * (time_bytes + 4) + isstd + isut;
    if (data.size() < p + size) return false;
    end = p + size;
    if (!out) return true;
    std::vector<int> type_offsets;
    std::size_t types_at = p + static_cast<std::size_t>(timecnt) * (time_bytes + 1);
    for (long long t = 0; t < typecnt; ++t)
      type_offsets.push_back(static_cast<int>(read_be(data, types_at + t * 6, 4)));
    for (long long t = 0; t < timecnt; ++t) {
      out->transitions_.push_back(read_be(data, p + t * time_bytes, time_bytes));
      auto index = static_cast<unsigned char>(data[p + timecnt * time_bytes + t]);
      if (index >= type_offsets.size()) return false;
      out->transition_offsets_.push_back(type_offsets[index]);
    }
    out->initial_offset_ = type_offsets[0];
    return true;
  };
  TimeZone zone;
  zone.name_ = name;
  std::size_t end = 0;
  const char version = data[4];
  if (version == '\0') {
    if (!block(0, 4, end, &zone)) return fail("truncated TZif data");
    zone.footer_offset_ =
        zone.transition_offsets_.empty() ? zone.initial_offset_ : std::optional<int>{};
    return zone;
  }
  if (!block(0, 4, end, nullptr)) return fail("truncated TZif data");
  std::size_t v2 = end;
  if (data.substr(v2, 4) != "TZif" || !block(v2, 8, end, &zone)) return fail("truncated TZif data");
  // The footer: "\nPOSIX-TZ\n" for times after the last transition.
  if (end < data.size() && data[end] == '\n') {
    auto close = data.find('\n', end + 1);
    if (close != std::string_view::npos)
      zone.footer_offset_ = posix_fixed_offset(data.substr(end + 1, close - end - 1));
  }
  return zone;
}

std::optional<TimeZone> TimeZone::load(std::string_view name, std::string& error,
                                       const std::string& zoneinfo_dir) {
  if (auto offset = parse_fixed_offset(name))
    return fixed(std::string(name), std::chrono::seconds(*offset));
  const std::string text(name);
  bool plausible = !text.empty() && text.front() != '/' && text.find("..") == std::string::npos &&
                   std::all_of(text.begin(), text.end(), [](char c) {
                     return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' ||
                            c == '-' || c == '+';
                   });
  if (!plausible) {
    error =
        "unknown time zone \"" + text + "\"; use an IANA name (Asia/Tokyo) or an offset (+09:00)";
    return std::nullopt;
  }
  std::ifstream file(zoneinfo_dir + "/" + text, std::ios::binary);
  if (!file) {
    error = "unknown time zone \"" + text + "\": no " + zoneinfo_dir + "/" + text +
            "; use an IANA name (Asia/Tokyo) or an offset (+09:00)";
    return std::nullopt;
  }
  std::stringstream buffer;
  buffer << file.rdbuf();
  return from_tzif(text, buffer.str(), error);
}

std::chrono::seconds TimeZone::offset_at(std::chrono::system_clock::time_point t) const {
  const long long s =
      std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  if (transitions_.empty() || s < transitions_.front())
    return std::chrono::seconds(transitions_.empty() && footer_offset_ ? *footer_offset_
                                                                       : initial_offset_);
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), s);
  if (it == transitions_.end() && footer_offset_) return std::chrono::seconds(*footer_offset_);
  // After the last transition of a zone with DST, its last offset stays (Debian's TZif files
  // list transitions up to 2037).
  return std::chrono::seconds(transition_offsets_[(it - transitions_.begin()) - 1]);
}

rules::Variables clock_variables(std::chrono::system_clock::time_point now, const TimeZone& zone,
                                 const std::set<std::string>& holidays) {
  using namespace std::chrono;
  const auto local = floor<seconds>(now) + zone.offset_at(now);
  const auto day = floor<days>(local);
  const year_month_day date{day};
  const hh_mm_ss<seconds> time{local - day};
  static constexpr const char* kWeekdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  char buffer[32];
  rules::Variables vars;
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  vars["NOW_DATE"] = buffer;
  vars["NOW_HOLIDAY"] = holidays.count(buffer) ? "1" : "0";
  const auto hours = static_cast<int>(time.hours().count());
  const auto minutes = static_cast<int>(time.minutes().count());
  std::snprintf(buffer, sizeof buffer, "%02d:%02d", hours, minutes);
  vars["NOW_TIME"] = buffer;
  std::snprintf(buffer, sizeof buffer, "%02d%02d", hours, minutes);
  vars["NOW_HHMM"] = buffer;
  vars["NOW_WEEKDAY"] = kWeekdays[weekday{day}.c_encoding()];
  return vars;
}

}  // namespace callbridge::clock
