#include "rules/regex.h"

#include <catch2/catch.hpp>
#include <chrono>

using callbridge::rules::Regex;
using callbridge::rules::RegexError;

namespace {

Regex must_compile(std::string_view literal) {
  RegexError error;
  auto regex = Regex::compile(literal, error);
  INFO(error.message);
  REQUIRE(regex);
  return *regex;
}

std::string group(const callbridge::rules::RegexMatch& m, const std::string& name) {
  for (const auto& [n, v] : m.groups)
    if (n == name) return v;
  return "<unset>";
}

}  // namespace

TEST_CASE("RemoTEL extraction pattern works on kintone's compact JSON", "[regex]") {
  Regex r =
      must_compile(R"re(/("value":"(?P<ID>[0-9]+)"}}],)*"totalCount":"(?P<COUNT>[0-9]+)"/)re");
  auto found = r.match(
      R"({"records":[{"record_no":{"type":"RECORD_NUMBER","value":"12"}}],"totalCount":"1"})");
  REQUIRE(found.matched);
  CHECK(group(found, "ID") == "12");
  CHECK(group(found, "COUNT") == "1");

  auto none = r.match(R"({"records":[],"totalCount":"0"})");
  REQUIRE(none.matched);
  CHECK(group(none, "ID") == "<unset>");  // did not take part
  CHECK(group(none, "COUNT") == "0");
}

TEST_CASE("flags and delimiters", "[regex]") {
  CHECK(must_compile("/^abc$/i").match("ABC").matched);
  CHECK_FALSE(must_compile("/^abc$/").match("ABC").matched);
  CHECK(must_compile("#^a/b$#").match("a/b").matched);
  CHECK(must_compile("/^a.b$/s").match("a\nb").matched);
  CHECK(must_compile("/^b$/m").match("a\nb").matched);
  CHECK(must_compile("/^ a b $/x").match("ab").matched);
  CHECK(must_compile("/^\\w+$/u").match("電話").matched);
  CHECK(must_compile("/^電話.$/").match("電話番").matched);  // UTF-8: one character
}

TEST_CASE("compile errors carry an offset", "[regex]") {
  RegexError error;
  CHECK_FALSE(Regex::compile("/(abc/", error));
  CHECK(error.message.find("parenthesis") != std::string::npos);
  CHECK(error.offset == 5);

  CHECK_FALSE(Regex::compile("/abc/q", error));
  CHECK(error.message.find("unknown pattern flag 'q'") != std::string::npos);
  CHECK(error.offset == 5);

  CHECK_FALSE(Regex::compile("abc", error));
  CHECK_FALSE(Regex::compile("/abc", error));
  CHECK_FALSE(Regex::compile("", error));
}

TEST_CASE("a catastrophic pattern fails fast with an error", "[regex]") {
  Regex r = must_compile("/^(a+)+$/");
  std::string subject(40, 'a');
  subject += '!';
  auto start = std::chrono::steady_clock::now();
  auto m = r.match(subject);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK_FALSE(m.matched);
  CHECK(m.error.find("limit") != std::string::npos);
  CHECK(elapsed < std::chrono::seconds(2));
}

TEST_CASE("invalid UTF-8 in a subject does not match and does not fail", "[regex]") {
  Regex r = must_compile("/^x(?P<V>.+)$/");
  auto m = r.match(std::string("x\xff\xfe"));
  CHECK(m.error.empty());
  CHECK_FALSE(m.matched);
  CHECK(r.match("xé").matched);
}
