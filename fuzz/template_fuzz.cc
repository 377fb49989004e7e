// Template compilation and rendering for each destination, and the escaping primitives: a
// value must never change the structure of what it is rendered into.
#include <nlohmann/json.hpp>

#include "fuzz/fuzz_input.h"
#include "rules/template.h"

using namespace callbridge;

namespace {

constexpr rules::Destination kDestinations[] = {rules::Destination::text, rules::Destination::json,
                                                rules::Destination::url, rules::Destination::header,
                                                rules::Destination::form};

std::optional<std::string> env(std::string_view name) {
  if (!name.empty() && name[0] == 'S') return std::string("s3cr3t\"'<&>");
  return std::nullopt;
}

void check_primitives(std::string_view value) {
  // Any bytes become the inside of a valid JSON string.
  auto parsed = nlohmann::json::parse("\"" + rules::json_escape(value) + "\"", nullptr, false);
  fuzz::check(parsed.is_string(), "json_escape gives a valid JSON string");

  for (char c : rules::percent_encode(value))
    fuzz::check(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
                    c == '~' || c == '%',
                "percent_encode leaves only unreserved characters and %XX");

  std::string literal = rules::kintone_query_literal(value);
  fuzz::check(literal.size() >= 2 && literal.front() == '"' && literal.back() == '"',
              "kintone literal is quoted");
  bool escaped = false;
  for (std::size_t i = 1; i + 1 < literal.size(); ++i) {
    char c = literal[i];
    if (escaped) {
      escaped = false;
      continue;
    }
    if (c == '\\')
      escaped = true;
    else
      fuzz::check(c != '"', "kintone literal has no unescaped quote inside");
  }
  fuzz::check(!escaped, "kintone literal does not end in a lone backslash");

  std::string b64 = rules::base64_encode(value);
  fuzz::check(b64.size() == (value.size() + 2) / 3 * 4, "base64 length");
  (void)rules::is_json_number(value);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  unsigned char sel = fuzz::selector(data, size);
  auto destination = kDestinations[sel % 5];
  bool redacted = (sel & 0x80) != 0;
  auto in = fuzz::parts(data, size, 1);

  // Part 0 is the template; the others are NAME=value variables.
  rules::Variables vars;
  for (std::size_t i = 1; i < in.size(); ++i) {
    std::string_view p = in[i];
    auto eq = p.find('=');
    std::string name(p.substr(0, eq));
    std::string value(eq == std::string_view::npos ? std::string_view() : p.substr(eq + 1));
    check_primitives(value);
    vars[name] = value;
  }

  std::vector<rules::Template::Error> errors;
  auto tpl = rules::Template::compile(in[0], destination, env, errors);
  for (const auto& e : errors) fuzz::check(e.offset <= in[0].size(), "error offset in the text");
  if (!errors.empty()) return 0;
  (void)tpl.variables();
  rules::RenderReport report;
  std::string out = tpl.render(vars, report, redacted);
  if (!report.error.empty()) return 0;
  if (destination == rules::Destination::header) {
    // A literal CR or LF in the template text itself is the author's; values must add none.
    bool literal_crlf = in[0].find_first_of("\r\n") != std::string::npos;
    if (!literal_crlf)
      fuzz::check(out.find_first_of("\r\n") == std::string::npos,
                  "no CR or LF reaches a header from a value");
  }
  if (redacted)
    fuzz::check(
        out.find("s3cr3t") == std::string::npos || in[0].find("s3cr3t") != std::string::npos ||
            [&] {
              for (const auto& [k, v] : vars)
                if (v.find("s3cr3t") != std::string::npos) return true;
              return false;
            }(),
        "a redacted rendering shows no secret");
  return 0;
}
