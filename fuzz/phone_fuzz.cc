// Phone normalisation: any caller ID text gives a key of digits (or none), and the hyphenated
// variants written into kintone queries all normalise back to that key.
#include "connectors/kintone/phone.h"
#include "fuzz/fuzz_input.h"

using namespace callbridge;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string raw(reinterpret_cast<const char*>(data), size);
  auto key = kintone::phone_key(raw);
  auto parsed = kintone::parse_phone(raw);
  fuzz::check(key.has_value() == parsed.has_value(), "phone_key and parse_phone agree");
  if (!key) return 0;
  fuzz::check(parsed->key == *key, "parse_phone keeps the key");
  fuzz::check(!key->empty(), "a key is never empty");
  for (std::size_t i = 0; i < key->size(); ++i)
    fuzz::check(std::isdigit(static_cast<unsigned char>((*key)[i])) || (i == 0 && (*key)[i] == '+'),
                "a key is digits, with an optional leading +");
  fuzz::check(kintone::phone_key(*key) == key, "a key is its own key");
  for (const auto& variant : kintone::phone_variants(*key))
    fuzz::check(kintone::phone_key(variant) == key, "every variant normalises back to the key");
  return 0;
}
