#include "rules/template.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace callbridge::rules;

namespace {

std::optional<std::string> test_env(std::string_view name) {
  if (name == "TOKEN") return std::string("s3cr3t-token-value");
  return std::nullopt;
}

Template must_compile(std::string_view text, Destination d) {
  std::vector<Template::Error> errors;
  Template t = Template::compile(text, d, test_env, errors);
  for (const auto& e : errors) INFO(e.message << " at " << e.offset);
  REQUIRE(errors.empty());
  return t;
}

std::string render(const Template& t, const Variables& vars) {
  RenderReport report;
  std::string out = t.render(vars, report);
  REQUIRE(report.error.empty());
  return out;
}

const std::vector<std::string> kHostile = {
    R"(1" or 電話番号 != ")",
    R"("},"x":{"value":"1)",
    "back\\slash\nnew line\ttab",
    "\x01\x1f control",
};

}  // namespace

TEST_CASE("variables are substituted - other braces stay", "[template]") {
  Template t = must_compile(R"(call {ID} from {TEL} {not a var} {"a":1})", Destination::text);
  CHECK(render(t, {{"ID", "C1"}, {"TEL", "03"}}) == R"(call C1 from 03 {not a var} {"a":1})");
  CHECK(t.variables() == std::vector<std::string>{"ID", "TEL"});
}

TEST_CASE("hostile values stay literal inside a JSON body", "[template][security]") {
  Template t =
      must_compile(R"({"app": 7, "record": {"電話番号": {"value": "{TEL}"}}})", Destination::json);
  for (const std::string& hostile : kHostile) {
    std::string body = render(t, {{"TEL", hostile}});
    auto json = nlohmann::json::parse(body);
    CHECK(json["record"]["電話番号"]["value"] == hostile);
    CHECK(json.size() == 2);
    CHECK(json["record"].size() == 1);
  }
}

TEST_CASE("a bare JSON placeholder is a number or a quoted string", "[template][security]") {
  Template t = must_compile(R"({"app": 7, "id": {RID}})", Destination::json);
  CHECK(render(t, {{"RID", "42"}}) == R"({"app": 7, "id": 42})");
  CHECK(render(t, {}) == R"({"app": 7, "id": null})");
  std::string body = render(t, {{"RID", R"(1, "app": 9)"}});
  auto json = nlohmann::json::parse(body);
  CHECK(json["app"] == 7);
  CHECK(json["id"] == R"(1, "app": 9)");
}

TEST_CASE("kintone query rendering keeps a caller ID literal", "[template][security]") {
  Template t = must_compile(R"({"app": 7, "query": "電話番号 = {TEL|query}"})", Destination::json);
  std::string body = render(t, {{"TEL", R"(1" or 電話番号 != ")"}});
  auto json = nlohmann::json::parse(body);
  CHECK(json["query"] == R"(電話番号 = "1\" or 電話番号 != \"")");
  CHECK(kintone_query_literal(R"(a\"b)") == R"("a\\\"b")");
}

TEST_CASE("URL placeholders are percent-encoded", "[template][security]") {
  Template t = must_compile("https://crm.example/find?tel={TEL}&q={Q|raw}", Destination::url);
  CHECK(render(t, {{"TEL", "+81 3&x=1/電"}, {"Q", "a%20b"}}) ==
        "https://crm.example/find?tel=%2B81%203%26x%3D1%2F%E9%9B%BB&q=a%20b");
}

TEST_CASE("CR/LF in a header value is rejected - even raw", "[template][security]") {
  Template t = must_compile("Bearer {T}", Destination::header);
  RenderReport report;
  t.render({{"T", "abc\r\nX-Evil: 1"}}, report);
  CHECK_FALSE(report.error.empty());
  Template raw = must_compile("{T|raw}", Destination::header);
  RenderReport report2;
  raw.render({{"T", "a\nb"}}, report2);
  CHECK_FALSE(report2.error.empty());
}

TEST_CASE("secrets render redacted on request", "[template][secrets]") {
  Template t = must_compile("token=${TOKEN}&id={ID}", Destination::text);
  RenderReport report;
  CHECK(t.render({{"ID", "1"}}, report) == "token=s3cr3t-token-value&id=1");
  CHECK(t.render({{"ID", "1"}}, report, true) == "token=[secret]&id=1");
}

TEST_CASE("undefined variables render empty and are reported", "[template]") {
  Template t = must_compile("{A}-{B}-{A}", Destination::text);
  RenderReport report;
  CHECK(t.render({{"B", "b"}}, report) == "-b-");
  CHECK(report.undefined == std::vector<std::string>{"A"});
}

TEST_CASE("filters", "[template]") {
  Template t = must_compile("{V|base64} {V|url}", Destination::text);
  CHECK(render(t, {{"V", "user:pass word"}}) == "dXNlcjpwYXNzIHdvcmQ= user%3Apass%20word");
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("a") == "YQ==");
  CHECK(base64_encode("ab") == "YWI=");
  CHECK(base64_encode("abc") == "YWJj");
}

TEST_CASE("template compile errors", "[template]") {
  std::vector<Template::Error> errors;
  Template::compile("{A|nope}", Destination::text, test_env, errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.find("unknown filter \"nope\"") != std::string::npos);

  errors.clear();
  Template::compile("x ${MISSING} y", Destination::text, test_env, errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == "environment variable ${MISSING} is not set");
  CHECK(errors[0].offset == 2);

  errors.clear();
  Template::compile("{\n \u201Capp\u201D: 7\n}", Destination::json, test_env, errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.find("typographic quotes") != std::string::npos);
}

TEST_CASE("JSON escaping replaces invalid UTF-8", "[template]") {
  CHECK(json_escape("a\xff"
                    "b") ==
        "a\xEF\xBF\xBD"
        "b");
  CHECK(json_escape("日本") == "日本");
  CHECK(is_json_number("-1.5e3"));
  CHECK_FALSE(is_json_number("01"));
  CHECK_FALSE(is_json_number("1,"));
}
