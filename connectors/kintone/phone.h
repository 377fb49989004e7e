// One normalisation for Japanese telephone numbers, so that "03-1234-5678", "+81-3-1234-5678",
// "(03)1234-5678" and full-width "０３１２３４５６７８" all become the key "0312345678". Withheld
// or non-numeric caller IDs ("anonymous", "非通知", "") have no key and never match anything.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbridge::kintone {

// The comparison key of a number: national digits for Japan ("0312345678"), "+<digits>" for
// other countries. nullopt when `raw` is not a telephone number at all.
std::optional<std::string> phone_key(std::string_view raw);

// A number as written, kept beside its key so that what is written back is what the user typed.
struct PhoneNumber {
  std::string original;
  std::string key;
};

std::optional<PhoneNumber> parse_phone(std::string_view raw);

}  // namespace callbridge::kintone

namespace callbridge::kintone {

// The ways people write the number of `key` in a kintone text field: as is, every Japanese
// hyphenation (area codes of 2 to 5 digits, 0120/0570/0800 and mobile/IP numbers) and +81 forms.
// For a query `電話番号 in (...)` that finds "03-1234-5678" when the caller ID is 0312345678.
std::vector<std::string> phone_variants(const std::string& key);

}  // namespace callbridge::kintone
