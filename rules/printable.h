// Control characters in text from outside: shown escaped on a terminal (the command line, the
// connectors' history views), refused where a value must be one plain line (numbers, IDs).
#pragma once

#include <string>
#include <string_view>

namespace callbridge::rules {

// `text` with control characters shown as \xNN, so that a stored value cannot drive the terminal
// (journals written before call IDs were checked may hold ANSI escapes).
std::string printable(std::string_view text);

// True when `text` holds a C0 control character or DEL.
bool has_control_characters(std::string_view text);

}  // namespace callbridge::rules
