// The console's key of a telephone number written any way: "03-1234-5678", "+81 3 1234 5678",
// "(03)1234-5678" and full-width "０３－１２３４－５６７８" all become "0312345678". The journal's
// index on callers' numbers (bridge/journal.cc, CALLBRIDGE_TEL_KEY_SQL) makes the same
// replacements, so a search finds a call however either side wrote the number. The core names no
// connector, so this is a small generic normaliser rather than kintone's directory key.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace callbridge::bridge {

// nullopt when what is left is not a number ("anonymous", "非通知", "").
std::optional<std::string> console_phone_key(std::string_view raw);

}  // namespace callbridge::bridge
