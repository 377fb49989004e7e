// A new user's first hour, through the real binary: validate without production secrets,
// commubo answered without a commubo section, Pigeon contacts with a list of phones, and one
// rejection vocabulary (busy, journal_unavailable) on every intake path.
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <thread>

#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/fake_kintone.h"

using namespace callbridge::testing;
using json = nlohmann::json;

namespace {

const std::string kBinary = CALLBRIDGE_BINARY;
const std::string kSamples = std::string(CALLBRIDGE_SOURCE_DIR) + "/samples";

// Holds the journal's write lock from another connection, as a stuck disk or a backup tool
// would: the bridge cannot make anything durable until it is released.
class JournalLock {
 public:
  explicit JournalLock(const std::string& path) {
    REQUIRE(sqlite3_open(path.c_str(), &db_) == SQLITE_OK);
    // The bridge may be writing at this moment (a readiness probe, an event): wait for it.
    sqlite3_busy_timeout(db_, 10000);
    REQUIRE(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  ~JournalLock() {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace

TEST_CASE("validate without production secrets: warnings, --strict-env, serve refuses",
          "[cli][env]") {
  TempDir dir;
  std::string file = dir.write("rules.yaml",
                               "server:\n"
                               "  listen: 127.0.0.1:0\n"
                               "  tokens: [\"${CB_TEST_UNSET_TOKEN}\"]\n"
                               "storage: { path: " +
                                   dir.path() +
                                   "/j.db }\n"
                                   "rules:\n"
                                   "  - name: lookup\n"
                                   "    event: 着信\n"
                                   "    request:\n"
                                   "      url: https://example.cybozu.com/k/v1/x.json\n"
                                   "      headers:\n"
                                   "        X-Cybozu-API-Token: ${CB_TEST_UNSET_KINTONE}\n"
                                   "      timeout: 900\n");
  SECTION("by default: warnings located, the rest still checked") {
    auto r = run_process({kBinary, "validate", "-c", file});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 2);  // the timeout is still an error
    CHECK(r.err.find(file +
                     ":3:13: warning: environment variable ${CB_TEST_UNSET_TOKEN} is not set") !=
          std::string::npos);
    CHECK(r.err.find(file + ":11:29: warning: environment variable ${CB_TEST_UNSET_KINTONE} is "
                            "not set") != std::string::npos);
    CHECK(r.err.find("\"request.timeout\": must be between 1 and 300") != std::string::npos);
  }
  std::string fixed =
      dir.write("fixed.yaml", replace_all(read_file(file), "timeout: 900", "timeout: 9"));
  SECTION("only warnings: exit 0") {
    auto r = run_process({kBinary, "validate", "-c", fixed});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find(": ok, 1 rules") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 2);
    CHECK(r.err.find("placeholder") == std::string::npos);  // the stand-in value is not shown
  }
  SECTION("--strict-env: errors, exit 2") {
    auto r = run_process({kBinary, "validate", "--strict-env", "-c", fixed});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(fixed + ":3:13: error: \"server.tokens\": environment variable "
                             "${CB_TEST_UNSET_TOKEN} is not set") != std::string::npos);
  }
  SECTION("serve refuses to start") {
    auto r = run_process({kBinary, "serve", "-c", fixed});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("error: \"server.tokens\": environment variable ${CB_TEST_UNSET_TOKEN} is "
                     "not set") != std::string::npos);
  }
  SECTION("set: no warning") {
    auto r = run_process(
        {kBinary, "validate", "-c", fixed},
        {{"CB_TEST_UNSET_TOKEN", "a-token-of-16-or-more"}, {"CB_TEST_UNSET_KINTONE", "k"}});
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
  }
}

TEST_CASE("commubo is answered without a commubo section or rule", "[e2e][commubo]") {
  Bridge bridge;
  bridge.write_config("");
  REQUIRE(bridge.start());
  auto payload = json::parse(read_file(kSamples + "/events/commubo.unknown.json"));
  auto r = httplib::Client("127.0.0.1", bridge.port())
               .Post(("/v1/commubo/inbound?token=" + kBridgeToken).c_str(), payload.dump(),
                     "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);  // default_status: commubo lets the call through
  auto history = bridge.wait_done(payload["callId"], 1);
  REQUIRE(history["events"].size() == 1);  // and the event is journaled
  CHECK(history["events"][0]["event"] == "commubo.inbound");
}

TEST_CASE("Pigeon chain/invoke: an inline contact with a list of phones", "[e2e][escalation]") {
  Bridge bridge;
  bridge.write_config(R"(escalation:
  guidances:
    - id: g1
      name: 障害通知
      message: 障害です。対応する場合は 1 を押してください。
      responses:
        1: { type: terminate, message: お願いします。 }
  dialer:
    type: simulate
    default: "key 1"
  ring_timeout: 30
  pause_between_calls: 0
  pause_between_loops: 0
)");
  REQUIRE(bridge.start());
  httplib::Client client("127.0.0.1", bridge.port());
  httplib::Headers head{{"X-Authorization", "Token " + kBridgeToken}};
  auto invoke = [&](const json& contact) {
    json params = {{"params",
                    {{"callflow", {{"displayName", "連絡"}, {"contacts", json::array({contact})}}},
                     {"guidanceId", "g1"}}}};
    return client.Post("/api/apps/pigeon/chain/invoke", head, params.dump(), "application/json");
  };
  SECTION("phones: the first number is called") {
    auto r =
        invoke({{"displayName", "担当者01"},
                {"phones", {{{"phoneNumber", "0999001122"}}, {{"phoneNumber", "0999003344"}}}}});
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    std::string id = json::parse(r->body)["resultId"];
    json result;
    for (int i = 0; i < 500; ++i) {
      auto got = client.Get(("/api/apps/pigeon/results/" + id).c_str(), head);
      REQUIRE(got);
      result = json::parse(got->body);
      if (!result["isActive"].get<bool>()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(result["status"] == "succeeded");
    CHECK(result.dump().find("0999001122") != std::string::npos);
    CHECK(result.dump().find("0999003344") == std::string::npos);
  }
  SECTION("phoneNumber still works; no number at all is still refused") {
    auto r = invoke({{"displayName", "担当者02"}, {"phoneNumber", "0999005566"}});
    REQUIRE(r);
    CHECK(r->status == 200);
    auto none = invoke({{"displayName", "担当者03"}, {"phones", json::array()}});
    REQUIRE(none);
    CHECK(none->status == 400);
    CHECK(none->body.find("contact 1 has no phoneNumber") != std::string::npos);
  }
}

TEST_CASE("busy and journal_unavailable: distinct codes, 503 and Retry-After on every path",
          "[e2e][backpressure]") {
  FakeKintone kintone;
  kintone.add_app(1, "record_no");
  Bridge bridge;
  bridge.write_config(
      "rules:\n  - name: slow\n    event: inbound\n    request:\n      method: GET\n"
      "      url: " +
          kintone.base_url() + "/k/v1/records.json?app=1\n",
      "dispatcher:\n  workers: 1\n  queue_capacity: 1\n"
      "webhooks:\n  - name: biztel\n    path: /v1/hooks/biztel\n    methods: [GET]\n"
      "    accept: [query]\n    auth: token\n    event: { key: event, default: inbound }\n"
      "    call_id: { key: id }\n"
      "escalation:\n  guidances:\n    - { id: g1, name: g, message: m, responses: { 1: { type: "
      "terminate, "
      "message: ok } } }\n"
      "  dialer: { type: simulate, default: \"key 1\" }\n");
  REQUIRE(bridge.start());
  auto client = bridge.client();
  client.set_read_timeout(60, 0);  // a locked journal answers after SQLite's busy timeout
  auto hook = [&](const std::string& id) {
    return client.Get(("/v1/hooks/biztel?id=" + id).c_str());
  };
  auto invoke = [&] {
    json params = {{"params",
                    {{"callflow",
                      {{"displayName", "c"},
                       {"contacts", json::array({{{"displayName", "a"}, {"phoneNumber", "1"}}})}}},
                     {"guidanceId", "g1"}}}};
    return client.Post("/api/apps/pigeon/chain/invoke", params.dump(), "application/json");
  };
  auto check = [](const httplib::Result& r, const std::string& code) {
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 503);
    CHECK(error_code(r) == code);
    if (code == "busy") {
      // Derived from the backlog and its drain rate (tests [backlog]): 1 to 30 s.
      int retry_after = std::atoi(r->get_header_value("Retry-After").c_str());
      CHECK(retry_after >= 1);
      CHECK(retry_after <= 30);
    } else {
      CHECK(r->get_header_value("Retry-After") == "1");
    }
  };

  SECTION("busy: the queue is full") {
    kintone.set_response_delay(std::chrono::milliseconds(1500));
    REQUIRE(bridge.post_event({{"event", "inbound"}, {"call_id", "B-1"}})->status == 202);
    // The worker holds B-1; a second call fills the queue.
    auto second = bridge.post_event({{"event", "inbound"}, {"call_id", "B-2"}});
    REQUIRE(second);
    if (second->status == 202) {
      check(bridge.post_event({{"event", "inbound"}, {"call_id", "B-3"}}), "busy");
      check(hook("B-4"), "busy");
    } else {
      check(second, "busy");
      check(hook("B-4"), "busy");
    }
    kintone.set_response_delay(std::chrono::milliseconds(0));
  }
  SECTION("journal_unavailable: nothing can be made durable") {
    JournalLock lock(bridge.dir.path() + "/journal.db");
    check(
        client.Post("/v1/events", R"({"event": "inbound", "call_id": "J-1"})", "application/json"),
        "journal_unavailable");
    check(hook("J-2"), "journal_unavailable");
    check(invoke(), "journal_unavailable");
  }
}
