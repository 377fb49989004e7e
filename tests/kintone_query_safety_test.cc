// Placeholders inside a kintone query, through the real binary against the fake kintone (which
// implements kintone's query language): written as the RemoTEL manual writes them, no caller ID
// can widen the query.
#include <catch2/catch.hpp>

#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;

namespace {

const std::string kBinary = CALLBRIDGE_BINARY;
const std::string kToken = "query-token-0123456789";
const std::string kNote = ": note: {TEL} is escaped for kintone's query language";

std::string pct(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// One lookup rule; the count kintone answers is extracted as COUNT.
std::string lookup(const std::string& url, const std::string& body) {
  std::string rule =
      "rules:\n  - name: lookup\n    event: 着信\n    request:\n      method: GET\n"
      "      url: '" +
      url + "'\n      headers:\n        X-Cybozu-API-Token: '" + kToken + "'\n";
  if (!body.empty()) rule += "        Content-Type: application/json\n      body: '" + body + "'\n";
  return rule + "    extract: '/\"totalCount\":\"(?P<COUNT>[0-9]+)\"/'\n";
}

// Caller IDs that try to rewrite the query, and one that is a customer's number.
const std::vector<std::string> kHostile = {
    "1\" or 電話番号 != \"",
    "1\\\" or 電話番号 != \\\"",
    "1 or 電話番号 != 1",
    "1\") or (電話番号 != \"",
    "1\") or 電話番号 in (\"0311112222\", \"0399998888",
    "1\"\nor 電話番号 != \"",
    "1\\",
    "\\\"",
};
const std::string kKnown = "0311112222";

std::string events_json() {
  nlohmann::json events = nlohmann::json::array();
  int n = 0;
  for (const auto& tel : kHostile)
    events.push_back({{"event", "着信"}, {"call_id", "c" + std::to_string(++n)}, {"tel", tel}});
  events.push_back({{"event", "着信"}, {"call_id", "known"}, {"tel", kKnown}});
  return events.dump();
}

// The COUNT extracted for each event, in order.
std::vector<std::string> counts(const std::string& out) {
  std::vector<std::string> found;
  const std::string key = "extracted RESPONSE_COUNT=";
  for (auto at = out.find(key); at != std::string::npos; at = out.find(key, at + 1))
    found.push_back(out.substr(at + key.size(), out.find('\n', at) - at - key.size()));
  return found;
}

struct Fixture {
  FakeKintone kintone;
  TempDir dir;
  std::string events;
  Fixture() {
    kintone.add_app(7, "record_no", 0);
    kintone.add_app(9, "record_no", 5);  // guest space 5
    for (int app : {7, 9}) {
      kintone.add_api_token(app, kToken);
      kintone.insert_record(app, {{"電話番号", {{"value", "0311112222"}}}});
      kintone.insert_record(app, {{"電話番号", {{"value", "0399998888"}}}});
    }
    events = dir.write("events.json", events_json());
  }
  ProcessResult simulate(const std::string& rules, std::map<std::string, std::string> env = {}) {
    std::string file = dir.write("callbridge.yaml", rules);
    return run_process({kBinary, "simulate", "-c", file, "--event", events, "--send"}, env);
  }
};

std::vector<std::string> safe_counts() {
  auto expected = std::vector<std::string>(kHostile.size(), "0");
  expected.push_back("1");
  return expected;
}

}  // namespace

TEST_CASE("kintone query: no caller ID widens a lookup written as the manual writes it",
          "[query][cli][kintone]") {
  Fixture f;
  const std::string base = f.kintone.base_url();
  std::string rules;
  SECTION("JSON body, placeholder inside a query string literal") {
    rules = lookup(base + "/k/v1/records.json",
                   R"j({"app": 7, "query": "電話番号 = \"{TEL}\"", "totalCount": "true"})j");
  }
  SECTION("JSON body, placeholder in a bare position") {
    rules = lookup(base + "/k/v1/records.json",
                   R"j({"app": 7, "query": "電話番号 = {TEL}", "totalCount": "true"})j");
  }
  SECTION("JSON body, bare inside in (...)") {
    rules = lookup(base + "/k/v1/records.json",
                   R"j({"app": 7, "query": "電話番号 in ({TEL}, \"x\")", "totalCount": "true"})j");
  }
  SECTION("URL query= parameter, bare") {
    rules = lookup(
        base + "/k/v1/records.json?app=7&totalCount=true&query=" + pct("電話番号 = ") + "{TEL}",
        "");
  }
  SECTION("URL query= parameter, inside a string literal") {
    rules = lookup(base + "/k/v1/records.json?app=7&totalCount=true&query=" + pct("電話番号 = \"") +
                       "{TEL}" + pct("\""),
                   "");
  }
  SECTION("templated host") {
    rules = lookup("http://127.0.0.1:{RESPONSE_KPORT}/k/v1/records.json",
                   R"j({"app": 7, "query": "電話番号 = {TEL}", "totalCount": "true"})j");
    rules = replace_all(rules, "    request:", "    order: 2\n    request:");
    rules = replace_all(rules, "rules:\n",
                        "rules:\n  - name: port\n    event: 着信\n    order: 1\n    request: "
                        "{url: 'response://" +
                            std::to_string(f.kintone.port()) +
                            "'}\n    extract: '/(?P<KPORT>[0-9]+)/'\n");
  }
  SECTION("guest space path") {
    rules = lookup(base + "/k/guest/5/v1/records.json",
                   R"j({"app": 9, "query": "電話番号 = \"{TEL}\"", "totalCount": "true"})j");
  }
  SECTION("explicit |query is not quoted twice") {
    rules = lookup(base + "/k/v1/records.json",
                   R"j({"app": 7, "query": "電話番号 = {TEL|query}", "totalCount": "true"})j");
  }
  auto r = f.simulate(rules);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(counts(r.out) == safe_counts());
}

TEST_CASE("kintone query: |raw stays the opt-out", "[query][cli][kintone]") {
  Fixture f;
  f.events = f.dir.write("raw.json",
                         R"j({"event": "着信", "call_id": "r", "tel": "1 or 電話番号 != 1"})j");
  auto r =
      f.simulate(lookup(f.kintone.base_url() + "/k/v1/records.json",
                        R"j({"app": 7, "query": "電話番号 = {TEL|raw}", "totalCount": "true"})j"));
  INFO(r.out << r.err);
  CHECK(counts(r.out) == std::vector<std::string>{"2"});  // raw means as written: it widens
  CHECK(r.err.find(kNote) == std::string::npos);
}

TEST_CASE("kintone query: validate and simulate note each placeholder treated", "[query][cli]") {
  TempDir dir;
  const std::string text =
      "rules:\n"
      "  - name: bare\n"
      "    event: 着信\n"
      "    request:\n"
      "      method: GET\n"
      "      url: https://{SUB}.cybozu.com/k/v1/records.json\n"
      "      body: '{\"app\": 7, \"query\": \"電話番号 = {TEL}\"}'\n"
      "  - name: quoted\n"
      "    event: 着信\n"
      "    request:\n"
      "      method: GET\n"
      "      url: https://example.cybozu.com/k/guest/3/v1/records.json\n"
      "      body: |\n"
      "        {\n"
      "          \"app\": 7,\n"
      "          \"query\": \"電話番号 = \\\"{TEL}\\\" and 会社名 = {TEL|query}\"\n"
      "        }\n"
      "  - name: url\n"
      "    event: 着信\n"
      "    request:\n"
      "      url: https://example.cybozu.com/k/v1/records.json?app=7&query="
      "%E9%9B%BB%E8%A9%B1%E7%95%AA%E5%8F%B7%3D{TEL}\n"
      "  - name: not-kintone\n"
      "    event: 着信\n"
      "    request:\n"
      "      method: POST\n"
      "      url: https://crm.example/api/v1/records.json\n"
      "      body: '{\"query\": \"電話番号 = {TEL}\"}'\n"
      "  - name: record\n"
      "    event: 着信\n"
      "    request:\n"
      "      method: POST\n"
      "      url: https://example.cybozu.com/k/v1/record.json\n"
      "      body: '{\"app\": 7, \"record\": {\"電話番号\": {\"value\": "
      "\"{TEL}\"}}}'\n";
  std::string file = dir.write("rules.yaml", text);
  // Where each treated {TEL} is: line and byte column in the file.
  auto at = [&](int line, int nth) {
    std::size_t start = 0;
    for (int l = 1; l < line; ++l) start = text.find('\n', start) + 1;
    std::size_t pos = start;
    for (int k = 0; k <= nth; ++k) pos = text.find("{TEL", pos + (k ? 1 : 0));
    return file + ":" + std::to_string(line) + ":" + std::to_string(pos - start + 1) + kNote;
  };
  auto r = run_process({kBinary, "validate", "-c", file});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.find(at(7, 0) + "\n") != std::string::npos);
  CHECK(r.err.find(at(16, 0) + "\n") != std::string::npos);
  CHECK(r.err.find(at(21, 0) + "\n") != std::string::npos);
  auto lines = std::count(r.err.begin(), r.err.end(), '\n');
  CHECK(lines == 3);  // not |query, not another CRM, not outside the query

  std::string events = dir.write("e.json", R"j({"event": "着信", "call_id": "c1", "tel": "1"})j");
  auto s = run_process({kBinary, "simulate", "-c", file, "--event", events});
  INFO(s.out << s.err);
  CHECK(s.exit_code == 0);
  CHECK(s.err.find(at(7, 0) + "\n") != std::string::npos);
}
