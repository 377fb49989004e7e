// Event names: the canonical set from the call-action screens, their Japanese labels, and
// custom names.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace callbridge::rules {

// Canonical name for `name` (itself, a Japanese alias, or a custom `[a-z0-9._-]+` name);
// nullopt when it is none of these.
std::optional<std::string> canonical_event(std::string_view name);

// "inbound (着信), answered (応答, 着信応答), ..." for error messages.
std::string known_events();

}  // namespace callbridge::rules
