// Regex gates and extraction: `/pattern/flags` literals compiled as the loader compiles them, then
// matched against a subject under the hard limits that keep the event path from hanging.
#include "fuzz/fuzz_input.h"
#include "rules/regex.h"

using namespace callbridge;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto in = fuzz::parts(data, size, 2);
  rules::RegexError error;
  // Lower limits than the defaults keep each input fast; the code paths are the same.
  rules::RegexLimits limits;
  limits.match_limit = 20'000;
  limits.depth_limit = 1'000;
  auto regex = rules::Regex::compile(in[0], error, limits);
  if (!regex) {
    fuzz::check(!error.message.empty(), "a rejected pattern says why");
    fuzz::check(error.offset <= in[0].size(), "error offset in the literal");
    return 0;
  }
  for (std::size_t i = 1; i < in.size(); ++i) {
    auto match = regex->match(in[i]);
    if (!match.matched) continue;
    for (const auto& [name, value] : match.groups) {
      bool known = false;
      for (const auto& n : regex->group_names()) known |= n == name;
      fuzz::check(known, "an extracted group is one of the pattern's named groups");
      fuzz::check(value.size() <= in[i].size(), "a group is part of the subject");
    }
  }
  return 0;
}
