#include "rules/events.h"

#include <array>

namespace callbridge::rules {

namespace {

struct EventName {
  std::string_view name;
  std::array<std::string_view, 2> aliases;
};

constexpr std::array<EventName, 10> kEvents{{
    {"inbound", {"着信", ""}},
    {"answered", {"応答", "着信応答"}},
    {"hangup", {"切断", "着信切断"}},
    {"callcenter.inbound", {"コールセンター着信", ""}},
    {"callcenter.answered", {"コールセンター応答", ""}},
    {"callcenter.hangup", {"コールセンター切断", ""}},
    {"outbound", {"発信", ""}},
    {"outbound.hangup", {"発信切断", ""}},
    {"commubo.inbound", {"", ""}},
    {"escalation.finished", {"", ""}},
}};

}  // namespace

std::optional<std::string> canonical_event(std::string_view name) {
  for (const EventName& e : kEvents) {
    if (name == e.name) return std::string(e.name);
    for (std::string_view alias : e.aliases)
      if (!alias.empty() && name == alias) return std::string(e.name);
  }
  if (name.empty() || name.size() > 64) return std::nullopt;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return std::nullopt;
  }
  return std::string(name);
}

std::string known_events() {
  std::string out;
  for (const EventName& e : kEvents) {
    if (!out.empty()) out += ", ";
    out += e.name;
    std::string aliases;
    for (std::string_view alias : e.aliases) {
      if (alias.empty()) continue;
      if (!aliases.empty()) aliases += ", ";
      aliases += alias;
    }
    if (!aliases.empty()) out += " (" + aliases + ")";
  }
  return out + ", or a custom name of [a-z0-9._-]";
}

}  // namespace callbridge::rules
