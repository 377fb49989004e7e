// The real binary: exit codes, messages, and what reaches the fake kintone.
#include <catch2/catch.hpp>

#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;

namespace {

const std::string kBinary = CALLBRIDGE_BINARY;
const std::string kSamples = std::string(CALLBRIDGE_SOURCE_DIR) + "/samples";
const std::map<std::string, std::string> kEnv = {
    {"KINTONE_CUSTOMER_TOKEN", "cli-token-0123456789"},
    {"KINTONE_HISTORY_TOKEN", "cli-history-token-0123"},
    {"KINTONE_LOGIN", "operator"},
    {"KINTONE_PASSWORD", "cli-pass-9876"},
    {"KINTONE_OAUTH_CLIENT_SECRET", "cli-oauth-secret-0123"},
    {"WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    {"PIGEON_TOKEN", "cli-pigeon-token-0123"}};

}  // namespace

TEST_CASE("validate accepts every sample", "[cli]") {
  for (const char* name : {"quickstart.yaml", "remotel-api-token.yaml", "remotel-password.yaml"}) {
    auto r = run_process({kBinary, "validate", "-c", kSamples + "/" + name}, kEnv);
    INFO(name << "\n" << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find(": ok, ") != std::string::npos);
  }
}

// Located errors of `validate`, exactly as printed: tests/config_errors/.

TEST_CASE("validate: undefined environment and unreadable files", "[cli]") {
  auto r = run_process({kBinary, "validate", "-c", kSamples + "/remotel-api-token.yaml"},
                       {{"KINTONE_CUSTOMER_TOKEN", ""}});
  CHECK(r.exit_code == 0);  // set but empty is defined
  auto missing = run_process({kBinary, "validate", "-c", "/nonexistent/callbridge.yaml"});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("cannot read configuration file") != std::string::npos);
}

TEST_CASE("usage errors exit 2 - --help exits 0", "[cli]") {
  CHECK(run_process({kBinary}).exit_code == 2);
  CHECK(run_process({kBinary, "frobnicate"}).exit_code == 2);
  for (const char* sub : {"validate", "simulate"}) {
    auto r = run_process({kBinary, sub, "--help"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("--config") != std::string::npos);
  }
  CHECK(run_process({kBinary, "simulate", "-c", kSamples + "/quickstart.yaml"}).exit_code == 2);
}

TEST_CASE("simulate --send replays a whole call against kintone", "[cli][kintone]") {
  FakeKintone kintone;
  kintone.add_app(7, "record_no");
  kintone.add_api_token(7, "cli-token-0123456789");
  TempDir dir;
  std::string config =
      dir.write("callbridge.yaml", replace_all(read_file(kSamples + "/remotel-api-token.yaml"),
                                               "https://example.cybozu.com", kintone.base_url()));
  std::string events = kSamples + "/events/remotel-api-token.answered.json";

  SECTION("dry run sends nothing") {
    auto r = run_process({kBinary, "simulate", "-c", config, "--event", events}, kEnv);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(kintone.requests().empty());
    CHECK(r.out.find("not sent (dry run") != std::string::npos);
    CHECK(r.out.find("curl -sS -X POST") != std::string::npos);
    CHECK(r.out.find("cli-token-0123456789") == std::string::npos);
    CHECK(r.out.find("X-Cybozu-API-Token: [secret]") != std::string::npos);
  }

  SECTION("unknown caller: one customer, one comment with the recording link") {
    auto r = run_process({kBinary, "simulate", "-c", config, "--event", events, "--send"}, kEnv);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    auto records = kintone.records(7);
    REQUIRE(records.size() == 1);
    CHECK(records[0]["電話番号"]["value"] == "0312345678");
    auto comments = kintone.comments(7, "1");
    REQUIRE(comments.size() == 1);
    CHECK(comments[0]["text"] ==
          "通話がありました。https://pbx.example.jp:8000/monitor_link/20261122-0001");
    CHECK(r.out.find("-> 200 in ") != std::string::npos);
    CHECK(r.out.find("extracted RESPONSE_COUNT=0") != std::string::npos);
    CHECK(r.out.find("extracted RESPONSE_ID=1") != std::string::npos);
    CHECK(r.out.find("skipped, \"1\" does not match /^0$/") !=
          std::string::npos);  // comment-missed
    CHECK(r.out.find("cli-token-0123456789") == std::string::npos);
  }

  SECTION("known caller: no new record") {
    kintone.insert_record(7, {{"電話番号", {{"value", "0312345678"}}}});
    auto r = run_process({kBinary, "simulate", "-c", config, "--event", events, "--send"}, kEnv);
    CHECK(r.exit_code == 0);
    CHECK(kintone.records(7).size() == 1);
    CHECK(kintone.comments(7, "1").size() == 1);
  }

  SECTION("a CRM failure exits 1 and says why") {
    kintone.fail_next(10, 503, R"({"code":"GAIA_TO04","id":"x","message":"busy"})");
    auto r = run_process({kBinary, "simulate", "-c", config, "--event", events, "--send"}, kEnv);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("-> 503 in ") != std::string::npos);
  }

  SECTION("PowerShell and JSON command formats") {
    auto ps = run_process(
        {kBinary, "simulate", "-c", config, "--event", events, "-f", "powershell"}, kEnv);
    CHECK(ps.out.find("Invoke-RestMethod -Method POST -Uri '" + kintone.base_url()) !=
          std::string::npos);
    CHECK(ps.out.find("-ContentType 'application/json'") != std::string::npos);
    auto json =
        run_process({kBinary, "simulate", "-c", config, "--event", events, "-f", "json"}, kEnv);
    CHECK(json.out.find("\"method\": \"POST\"") != std::string::npos);
  }
}

TEST_CASE("the quickstart runs offline from the command line", "[cli]") {
  auto r = run_process({kBinary, "simulate", "-c", kSamples + "/quickstart.yaml", "--event",
                        kSamples + "/events/quickstart.json", "--send"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("local response (no request is sent)") != std::string::npos);
  CHECK(r.out.find("RESPONSE_NOTE=missed call Q-0001 from 0312345678 (queue priority)") !=
        std::string::npos);
}
