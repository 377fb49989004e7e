// The secret values read from `${ENV}` at load. Anything shown or stored passes through
// `redact`, a second line of defence behind templates that already render `[secret]`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace callbridge::rules {

class SecretSet {
 public:
  void add(std::string value);
  std::string redact(std::string_view text) const;
  bool empty() const { return values_.empty(); }

 private:
  std::vector<std::string> values_;  // longest first, so a secret containing another goes whole
};

}  // namespace callbridge::rules
