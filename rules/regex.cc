#include "rules/regex.h"

#include <pcre2.h>

#include <algorithm>
#include <cctype>

namespace callbridge::rules {

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  // Name table entries: group number and name, so extraction needs no lookups per match.
  std::vector<std::pair<std::uint32_t, std::string>> named;
  ~Compiled() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  int n = pcre2_get_error_message(code, buffer, sizeof buffer);
  return n < 0 ? "unknown PCRE2 error " + std::to_string(code)
               : std::string(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(n));
}

}  // namespace

std::optional<Regex> Regex::compile(std::string_view literal, RegexError& error,
                                    RegexLimits limits) {
  if (literal.empty()) {
    error = {"empty pattern; write it as /pattern/flags", 0};
    return std::nullopt;
  }
  unsigned char delimiter = static_cast<unsigned char>(literal.front());
  if (std::isalnum(delimiter) || std::isspace(delimiter) || delimiter == '\\' ||
      delimiter >= 0x80) {
    error = {"pattern must be written as /pattern/flags (delimiter missing)", 0};
    return std::nullopt;
  }
  std::size_t close = literal.rfind(static_cast<char>(delimiter));
  if (close == 0) {
    error = {
        "pattern has no closing delimiter '" + std::string(1, static_cast<char>(delimiter)) + "'",
        literal.size()};
    return std::nullopt;
  }
  // UTF-8 always; invalid UTF-8 in a subject simply does not match instead of failing.
  std::uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  for (std::size_t i = close + 1; i < literal.size(); ++i) {
    switch (literal[i]) {
      case 'i':
        options |= PCRE2_CASELESS;
        break;
      case 'm':
        options |= PCRE2_MULTILINE;
        break;
      case 's':
        options |= PCRE2_DOTALL;
        break;
      case 'x':
        options |= PCRE2_EXTENDED;
        break;
      case 'u':
        options |= PCRE2_UCP;
        break;
      default:
        error = {"unknown pattern flag '" + std::string(1, literal[i]) + "'; known: i m s x u", i};
        return std::nullopt;
    }
  }
  std::string_view pattern = literal.substr(1, close - 1);
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                       options, &code, &offset, nullptr);
  if (compiled == nullptr) {
    error = {pcre2_message(code), offset + 1};
    return std::nullopt;
  }
  auto holder = std::make_shared<Compiled>();
  holder->code = compiled;
  pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
  holder->context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(holder->context, limits.match_limit);
  pcre2_set_depth_limit(holder->context, limits.depth_limit);

  std::uint32_t count = 0, entry_size = 0;
  PCRE2_SPTR table = nullptr;
  pcre2_pattern_info(compiled, PCRE2_INFO_NAMECOUNT, &count);
  pcre2_pattern_info(compiled, PCRE2_INFO_NAMEENTRYSIZE, &entry_size);
  pcre2_pattern_info(compiled, PCRE2_INFO_NAMETABLE, &table);
  for (std::uint32_t i = 0; i < count; ++i) {
    PCRE2_SPTR entry = table + i * entry_size;
    std::uint32_t group = (static_cast<std::uint32_t>(entry[0]) << 8) | entry[1];
    holder->named.emplace_back(group, reinterpret_cast<const char*>(entry + 2));
  }
  // The name table is sorted by name; keep pattern order so output reads like the pattern.
  std::sort(holder->named.begin(), holder->named.end());

  Regex regex;
  regex.literal_ = std::string(literal);
  for (const auto& [group, name] : holder->named) regex.group_names_.push_back(name);
  regex.compiled_ = std::move(holder);
  return regex;
}

RegexMatch Regex::match(std::string_view subject) const {
  RegexMatch result;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(compiled_->code, nullptr), &pcre2_match_data_free);
  int rc = pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()),
                       subject.size(), 0, 0, data.get(), compiled_->context);
  if (rc == PCRE2_ERROR_NOMATCH) return result;
  if (rc < 0) {
    result.error = "pattern " + literal_ + " failed: " + pcre2_message(rc);
    return result;
  }
  result.matched = true;
  PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
  std::uint32_t pairs = pcre2_get_ovector_count(data.get());
  for (const auto& [group, name] : compiled_->named) {
    if (group >= pairs || ovector[2 * group] == PCRE2_UNSET) continue;
    result.groups.emplace_back(
        name, std::string(
                  subject.substr(ovector[2 * group], ovector[2 * group + 1] - ovector[2 * group])));
  }
  return result;
}

}  // namespace callbridge::rules
