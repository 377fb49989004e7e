// PCRE2 patterns written as `/pattern/flags`, compiled once at load, matched with hard limits so a
// catastrophic pattern fails fast with an error value instead of hanging the event path.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callbridge::rules {

struct RegexLimits {
  std::uint32_t match_limit = 1'000'000;  // backtracking steps per match
  std::uint32_t depth_limit = 10'000;     // nested backtracking frames (interpreter only)
};

struct RegexError {
  std::string message;
  std::size_t offset = 0;  // byte offset in the `/pattern/flags` literal
};

struct RegexMatch {
  bool matched = false;
  // Named groups that took part in the match, in pattern order.
  std::vector<std::pair<std::string, std::string>> groups;
  std::string error;  // non-empty when matching itself failed (limits, bad UTF-8 in pattern use)
};

class Regex {
 public:
  // Parses and compiles `/pattern/flags` (flags: i m s x u). The delimiter is the first
  // character and may be any punctuation, as with PHP's preg functions.
  static std::optional<Regex> compile(std::string_view literal, RegexError& error,
                                      RegexLimits limits = {});

  RegexMatch match(std::string_view subject) const;
  const std::string& literal() const { return literal_; }
  const std::vector<std::string>& group_names() const { return group_names_; }

 private:
  struct Compiled;
  Regex() = default;
  std::string literal_;
  std::vector<std::string> group_names_;
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace callbridge::rules
