// `callbridge simulate -f curl|powershell|json` with hostile values: each command, pasted, must
// send exactly the value and run nothing else.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "bridge/command_format.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;
using nlohmann::json;

namespace {

const std::string kBinary = CALLBRIDGE_BINARY;

const char* kConfig = R"y(
rules:
  - name: tell-crm
    event: inbound
    request:
      method: POST
      url: https://crm.example.com/calls
      headers:
        Content-Type: text/plain
        X-Tel: "{TEL}"
      body: "tel={BODY}"
)y";

// What a caller ID or a CRM's answer may hold. Header values cannot hold CR, LF or NUL (the
// rule fails without sending), so control characters go to the body only.
const std::vector<std::string> kHeaderValues = {
    "x\u2019; Start-Process calc; \u2018",
    "a'b\u2018c\u2019d\u201ae\u201bf''",
    "$(touch pwned) `touch pwned` ${HOME} $env:PATH",
    "\"double\" \u201csmart\u201d \u201elow\u201d \\ end\\",
    "@/etc/passwd",
    "\x1b[31mred\x1b[0m bell\x07",
};
const std::vector<std::string> kBodyExtras = {
    "line one\nline two\r\n\ttabbed",
    "'; touch pwned; echo '",
};

// The lines of `out` from the one starting with `first` through the first one `last` accepts,
// without simulate's three-space indent.
std::string block(const std::string& out, const std::string& first,
                  const std::function<bool(const std::string&)>& last) {
  std::string result;
  bool in = false;
  std::size_t at = 0;
  while (at < out.size()) {
    std::size_t end = out.find('\n', at);
    if (end == std::string::npos) end = out.size();
    std::string line = out.substr(at, end - at);
    at = end + 1;
    if (!in && line.rfind("   " + first, 0) == 0) in = true;
    if (!in) continue;
    result += line.substr(line.rfind("   ", 0) == 0 ? 3 : 0) + "\n";
    if (last(line)) break;
  }
  return result;
}

// Decodes the PowerShell string literal at `text[at]` by PowerShell's rules; `at` ends just
// past it. Single quotes: ', U+2018, U+2019, U+201A, U+201B all quote, a pair stands for the
// second. Double quotes: ", U+201C, U+201D, U+201E; backtick escapes; $([char]0xHH).
std::string ps_literal(const std::string& text, std::size_t& at) {
  auto quote_at = [&](std::size_t i, bool single) -> std::size_t {
    static const std::vector<std::string> singles = {"'", "\u2018", "\u2019", "\u201a", "\u201b"};
    static const std::vector<std::string> doubles = {"\"", "\u201c", "\u201d", "\u201e"};
    for (const auto& q : single ? singles : doubles)
      if (text.compare(i, q.size(), q) == 0) return q.size();
    return 0;
  };
  std::string out;
  if (std::size_t n = quote_at(at, true)) {
    at += n;
    while (at < text.size()) {
      if (std::size_t q = quote_at(at, true)) {
        if (std::size_t q2 = quote_at(at + q, true)) {
          out += text.substr(at + q, q2);
          at += q + q2;
          continue;
        }
        at += q;
        return out;
      }
      out += text[at++];
    }
    throw std::runtime_error("unterminated single-quoted string");
  }
  if (std::size_t n = quote_at(at, false)) {
    at += n;
    while (at < text.size()) {
      if (std::size_t q = quote_at(at, false)) {
        at += q;
        return out;
      }
      if (text[at] == '`') {
        char c = text[at + 1];
        out += c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c == '0' ? '\0' : c;
        at += 2;
        continue;
      }
      if (text.compare(at, 10, "$([char]0x") == 0) {
        std::size_t close = text.find(')', at);
        out += static_cast<char>(std::stoi(text.substr(at + 10, close - at - 10), nullptr, 16));
        at = close + 1;
        continue;
      }
      if (text[at] == '$') throw std::runtime_error("unescaped $ would expand");
      out += text[at++];
    }
    throw std::runtime_error("unterminated double-quoted string");
  }
  throw std::runtime_error("no string at " + text.substr(at, 20));
}

struct Rendered {
  std::string curl, powershell, json;
};

Rendered simulate(const TempDir& dir, const std::string& tel, const std::string& body) {
  std::string config = dir.write("callbridge.yaml", kConfig);
  std::string events = dir.write(
      "events.json",
      json({{"event", "inbound"}, {"call_id", "Q-1"}, {"vars", {{"TEL", tel}, {"BODY", body}}}})
          .dump());
  Rendered r;
  for (auto [format, target] : {std::pair{"curl", &r.curl}, std::pair{"powershell", &r.powershell},
                                std::pair{"json", &r.json}}) {
    auto p = run_process({kBinary, "simulate", "-c", config, "--event", events, "-f", format});
    INFO(p.out << p.err);
    REQUIRE(p.exit_code == 0);
    *target = p.out;
  }
  return r;
}

}  // namespace

TEST_CASE("simulate: every command format carries hostile values exactly", "[cli][quoting]") {
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> cases;
  for (const auto& v : kHeaderValues) cases.emplace_back(v, v);
  for (const auto& v : kBodyExtras) cases.emplace_back("0312345678", v);
  for (const auto& [tel, body_value] : cases) {
    INFO("tel: " << tel << "\nbody: " << body_value);
    Rendered r = simulate(dir, tel, body_value);
    std::string body = "tel=" + body_value;

    // curl: run the command in bash with curl replaced by a function that lists its arguments.
    std::string curl = block(r.curl, "curl ", [](const std::string& line) {
      return line.find("--max-time") != std::string::npos;
    });
    INFO(curl);
    REQUIRE_FALSE(curl.empty());
    std::string script = dir.write(
        "run.sh", "cd " + dir.path() +
                      "\ncurl() { for a in \"$@\"; do printf '%s\\0' \"$a\"; done; }\n" + curl);
    auto ran = run_process({"/bin/bash", script});
    std::vector<std::string> args;
    for (std::size_t at = 0; at < ran.out.size();) {
      std::size_t end = ran.out.find('\0', at);
      args.push_back(ran.out.substr(at, end - at));
      at = end + 1;
    }
    CHECK(ran.exit_code == 0);
    CHECK(std::find(args.begin(), args.end(), "X-Tel: " + tel) != args.end());
    auto data = std::find(args.begin(), args.end(), "--data-raw");
    REQUIRE(data != args.end());
    CHECK(*(data + 1) == body);
    CHECK_FALSE(std::filesystem::exists(dir.path() + "/pwned"));
    CHECK(curl.find('\x1b') == std::string::npos);

    // PowerShell: each value is one string literal that decodes to it, followed by the syntax
    // that should follow it.
    std::string ps = block(r.powershell, "Invoke-RestMethod", [](const std::string& line) {
      return line.empty() || line.back() != '`';
    });
    INFO(ps);
    std::size_t at = ps.find("'X-Tel' = ");
    REQUIRE(at != std::string::npos);
    at += 10;
    CHECK(ps_literal(ps, at) == tel);
    CHECK(ps.compare(at, 2, " }") == 0);
    at = ps.find("GetBytes(");
    REQUIRE(at != std::string::npos);
    at += 9;
    CHECK(ps_literal(ps, at) == body);
    CHECK(ps.compare(at, 3, "))\n") == 0);
    CHECK(ps.find('\x1b') == std::string::npos);

    // JSON: the object decodes to the values.
    std::string js = block(r.json, "{", [](const std::string& line) { return line == "   }"; });
    auto j = json::parse(js, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["headers"]["X-Tel"] == tel);
    CHECK(j["body"] == body);
  }
}

TEST_CASE("PowerShell and shell quoting of bytes that are not UTF-8", "[quoting]") {
  callbridge::http::Request request;
  request.method = "POST";
  request.url = "https://crm.example.com/x";
  request.headers = {{"X-Raw", std::string("a\x92"
                                           "b\xe2\x80")}};
  request.body = "z\x91";
  std::string ps = callbridge::render_command(request, callbridge::CommandFormat::powershell);
  INFO(ps);
  // Windows PowerShell reading a file as Windows-1252 would take 0x91 and 0x92 for quotes.
  CHECK(ps.find('\x92') == std::string::npos);
  CHECK(ps.find('\x91') == std::string::npos);
  CHECK(ps.find("\"a$([char]0xfffd)b$([char]0xfffd)$([char]0xfffd)\"") != std::string::npos);
  std::string sh = callbridge::render_command(request, callbridge::CommandFormat::curl);
  CHECK(sh.find("-H 'X-Raw: a\x92"
                "b\xe2\x80'") != std::string::npos);
}
