// Text shown on a terminal by the command line and the connectors' history views.
#pragma once

#include <string>
#include <string_view>

namespace callbridge::rules {

// `text` with control characters shown as \xNN, so that a stored value cannot drive the terminal
// (journals written before call IDs were checked may hold ANSI escapes).
std::string printable(std::string_view text);

}  // namespace callbridge::rules
