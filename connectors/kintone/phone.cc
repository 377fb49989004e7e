#include "connectors/kintone/phone.h"

#include <algorithm>
#include <cstdint>

namespace callbridge::kintone {

namespace {

// Decodes one UTF-8 code point at `i`; advances `i`. Invalid bytes give U+FFFD.
char32_t next_code_point(std::string_view s, std::size_t& i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
  if (extra < 0 || i + static_cast<std::size_t>(extra) >= s.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t cp = c & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) {
    unsigned char cc = byte(i + static_cast<std::size_t>(k));
    if ((cc & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += static_cast<std::size_t>(extra) + 1;
  return cp;
}

bool is_separator(char32_t c) {
  switch (c) {
    case ' ':
    case '\t':
    case '-':
    case '.':
    case '(':
    case ')':
    case 0x3000:  // ideographic space
    case 0x2010:  // hyphen
    case 0x2011:  // non-breaking hyphen
    case 0x2012:  // figure dash
    case 0x2013:  // en dash
    case 0x2014:  // em dash
    case 0x2015:  // horizontal bar
    case 0x2212:  // minus sign
    case 0x30FC:  // katakana prolonged sound mark, often typed for a dash
    case 0xFF0D:  // full-width hyphen-minus
    case 0xFF08:  // full-width (
    case 0xFF09:  // full-width )
    case 0xFF0E:  // full-width .
    case 0xFF70:  // half-width prolonged sound mark
      return true;
    default:
      return false;
  }
}

}  // namespace

std::optional<std::string> phone_key(std::string_view raw) {
  std::string digits;
  bool plus = false;
  std::size_t i = 0;
  while (i < raw.size()) {
    char32_t c = next_code_point(raw, i);
    if (c >= '0' && c <= '9') {
      digits += static_cast<char>(c);
    } else if (c >= 0xFF10 && c <= 0xFF19) {  // full-width digits
      digits += static_cast<char>('0' + (c - 0xFF10));
    } else if (c == '+' || c == 0xFF0B) {
      if (plus || !digits.empty()) return std::nullopt;  // a plus only leads
      plus = true;
    } else if (!is_separator(c)) {
      return std::nullopt;  // "anonymous", "非通知", an extension "ext. 12"...
    }
  }
  if (plus) {
    if (digits.rfind("81", 0) == 0) {
      std::string national = digits.substr(2);
      // "+81 (0)3-1234-5678": the trunk prefix written in brackets is dropped.
      if (!national.empty() && national[0] == '0') national.erase(0, 1);
      digits = "0" + national;
      plus = false;
    } else if (digits.size() < 7 || digits.size() > 15) {
      return std::nullopt;
    }
  }
  // Below three digits nothing is a number a customer could be found by.
  if (digits.size() < 3 || digits.size() > 15) return std::nullopt;
  return plus ? "+" + digits : digits;
}

std::optional<PhoneNumber> parse_phone(std::string_view raw) {
  auto key = phone_key(raw);
  if (!key) return std::nullopt;
  return PhoneNumber{std::string(raw), *key};
}

}  // namespace callbridge::kintone

namespace callbridge::kintone {

std::vector<std::string> phone_variants(const std::string& key) {
  std::vector<std::string> out;
  auto add = [&](std::string v) {
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(std::move(v));
  };
  add(key);
  if (key.empty() || key[0] != '0') return out;
  auto split = [&](std::size_t a, std::size_t b) {
    if (a + b >= key.size()) return;
    add(key.substr(0, a) + "-" + key.substr(a, b) + "-" + key.substr(a + b));
  };
  std::string rest = key.substr(1);
  if (key.size() == 10) {
    if (key.rfind("0120", 0) == 0 || key.rfind("0570", 0) == 0 || key.rfind("0800", 0) == 0) {
      split(4, 3);
    } else {
      for (std::size_t area = 2; area <= 5; ++area) split(area, 6 - area);
    }
  } else if (key.size() == 11) {
    split(3, 4);  // 090-1234-5678, 050-1234-5678
    split(4, 3);  // 0800-123-4567
  }
  // "00..." is an international call prefix, not a national number: no +81 form of it keys back
  // to `key` ("+8103" is "03"), so none is searched for.
  if (rest.empty() || rest[0] == '0') return out;
  add("+81" + rest);
  std::size_t n = out.size();
  for (std::size_t i = 1; i < n; ++i)
    if (out[i][0] == '0') add("+81-" + out[i].substr(1));
  return out;
}

}  // namespace callbridge::kintone
