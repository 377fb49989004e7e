#include "bridge/console_phone.h"

#include <algorithm>
#include <utility>

namespace callbridge::bridge {

std::optional<std::string> console_phone_key(std::string_view raw) {
  // In this order, as CALLBRIDGE_TEL_KEY_SQL nests them.
  static const std::pair<std::string_view, std::string_view> kReplacements[] = {
      {"０", "0"}, {"１", "1"}, {"２", "2"}, {"３", "3"}, {"４", "4"}, {"５", "5"}, {"６", "6"},
      {"７", "7"}, {"８", "8"}, {"９", "9"}, {"＋", "+"}, {" ", ""},   {"-", ""},   {"(", ""},
      {")", ""},   {".", ""},   {"‐", ""},   {"−", ""},   {"－", ""},  {"ー", ""},  {"（", ""},
      {"）", ""},  {"　", ""},  {"―", ""},   {"+81", "0"}};
  std::string key(raw);
  for (const auto& [from, to] : kReplacements) {
    std::string next;
    std::size_t at = 0;
    while (true) {
      auto found = key.find(from, at);
      next.append(key, at, found == std::string::npos ? std::string::npos : found - at);
      if (found == std::string::npos) break;
      next += to;
      at = found + from.size();
    }
    key = std::move(next);
  }
  std::string_view digits = key;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return key;
}

}  // namespace callbridge::bridge
