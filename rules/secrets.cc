#include "rules/secrets.h"

#include <algorithm>

#include "rules/template.h"

namespace callbridge::rules {

void SecretSet::add(std::string value) {
  // Very short values would redact ordinary text ("1", "ab"); templates still hide them.
  if (value.size() < 4) return;
  // Also hide the forms a secret takes on the wire.
  std::vector<std::string> forms{value, json_escape(value), percent_encode(value),
                                 base64_encode(value)};
  for (std::string& form : forms)
    if (std::find(values_.begin(), values_.end(), form) == values_.end())
      values_.push_back(std::move(form));
  std::sort(values_.begin(), values_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string SecretSet::redact(std::string_view text) const {
  std::string out(text);
  for (const std::string& secret : values_) {
    for (std::size_t at = out.find(secret); at != std::string::npos; at = out.find(secret, at + 8))
      out.replace(at, secret.size(), "[secret]");
  }
  return out;
}

}  // namespace callbridge::rules
