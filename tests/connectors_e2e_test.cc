// Connectors through the real binary: `callbridge serve` with commubo, webhook sources, the
// Pigeon-compatible API and the customer directory, driven over HTTP as the real systems do.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "connectors/webhook/signature.h"
#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kSamples = std::string(CALLBRIDGE_SOURCE_DIR) + "/samples";
const std::string kWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// A CRM that answers too late for the deadline (after 3 s).
struct HungCrm {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  HungCrm() {
    server.Get(".*", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::seconds(3));
      res.set_content("{}", "application/json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::yield();
  }
  ~HungCrm() {
    server.stop();
    thread.join();
  }
};

json commubo_payload(const std::string& file) {
  return json::parse(read_file(kSamples + "/events/" + file));
}

}  // namespace

TEST_CASE("commubo callback through the binary: known, blocked, unknown with a hung CRM, malformed",
          "[e2e][commubo]") {
  HungCrm crm;
  Bridge bridge;
  bridge.write_config(R"(rules:
  - name: blocklist
    event: commubo.inbound
    order: 1
    when: { code: "{TEL}", pattern: "/^(0120999999|anonymous)$/" }
    decide: { status: 486 }
  - name: known-to-commubo
    event: commubo.inbound
    order: 2
    when: { code: "{COMMUBO_CUSTOMER_FOUND}", pattern: "/^1$/" }
    decide: 200
  - name: crm-lookup
    event: commubo.inbound
    order: 3
    request:
      url: http://127.0.0.1:)" +
                          std::to_string(crm.port) +
                          R"(/k/v1/records.json?app=7
      timeout: 2
    retry: { attempts: 1 }
  - name: after-lookup
    event: commubo.inbound
    order: 4
    decide: { status: 480 }
)",
                      "commubo: { deadline_ms: 600, default_status: 200 }\n");
  REQUIRE(bridge.start());
  auto client = bridge.client();
  const std::string url = "/v1/commubo/inbound?token=" + kBridgeToken;

  SECTION("the 002 payload as is: a caller commubo knows continues") {
    auto payload = commubo_payload("commubo.known.json");
    auto r = httplib::Client("127.0.0.1", bridge.port())
                 .Post(url.c_str(), payload.dump(), "application/json");  // token in the URL only
    REQUIRE(r);
    CHECK(r->status == 200);
    auto body = json::parse(r->body);
    CHECK(body["reason"] == "decided");
    CHECK(body["rule"] == "known-to-commubo");
    // The answer is journaled with the event and shown in the call's history.
    auto history = bridge.wait_done(payload["callId"], 1);
    REQUIRE(history["events"].size() == 1);
    CHECK(history["events"][0]["event"] == "commubo.inbound");
    CHECK(history["events"][0]["notes"]["commubo"]["status"] == 200);
    CHECK(history["events"][0]["notes"]["commubo"]["reason"] == "decided");
    CHECK(history["variables"]["COMMUBO_CUSTOMER_FAMILY_NAME"] == "鈴木");
  }
  SECTION("a blocklisted number is rejected") {
    auto payload = commubo_payload("commubo.known.json");
    payload["phoneNumber"] = "0120999999";
    payload["callId"] = "blocked-1";
    auto r = client.Post(url.c_str(), payload.dump(), "application/json");
    REQUIRE(r);
    CHECK(r->status == 486);
  }
  SECTION("an unknown caller whose CRM lookup hangs is answered at the deadline") {
    auto payload = commubo_payload("commubo.unknown.json");
    auto t0 = Clock::now();
    auto r = client.Post(url.c_str(), payload.dump(), "application/json");
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(json::parse(r->body)["reason"] == "deadline");
    CHECK(ms >= 550);
    CHECK(ms < 600 + 400);  // generous for sanitizer builds; the benchmark measures the margin
    // The rules go on in the background: the lookup times out, the later decision is recorded.
    auto history = bridge.wait_done(payload["callId"].get<std::string>(), 1);
    CHECK(history["events"][0]["notes"]["commubo"]["reason"] == "deadline");
    CHECK(history["variables"]["DECISION_STATUS"] == "480");
  }
  SECTION("malformed payloads continue the call, as documented; a wrong token is refused") {
    for (std::string body : {"{not json", "[]", R"({"callType": "0"})"}) {
      INFO(body);
      auto r = client.Post(url.c_str(), body, "application/json");
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(json::parse(r->body)["reason"] == "error");
    }
    auto denied = httplib::Client("127.0.0.1", bridge.port())
                      .Post("/v1/commubo/inbound?token=wrong-token-0123456789",
                            commubo_payload("commubo.known.json").dump(), "application/json");
    REQUIRE(denied);
    CHECK(denied->status == 401);
  }
}

TEST_CASE("a signed webhook through the binary: bad signatures refused, duplicates processed once",
          "[e2e][webhook]") {
  Bridge bridge;
  bridge.write_config(read_file(kSamples + "/webhook-generic.yaml")
                          .substr(read_file(kSamples + "/webhook-generic.yaml").find("webhooks:")) +
                      R"(rules:
  - name: note
    event: inbound
    request: { url: "response://{AGENT}" }
    extract: '/(?P<AGENT_SEEN>.+)/'
)");
  REQUIRE(bridge.start({{"WEBHOOK_SECRET", kWebhookSecret}}));
  httplib::Client plain("127.0.0.1", bridge.port());
  const std::string body =
      R"({"type": "call.ringing", "data": {"call_id": "call_e2e", "from": "0312345678",)"
      R"( "answered": false, "agent": {"name": "佐藤"}, "queue": "support"}})";
  auto key = *callbridge::webhook::decode_webhook_secret(kWebhookSecret);
  auto now = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  auto deliver = [&](const std::string& id, const std::string& timestamp,
                     const std::string& signature) {
    httplib::Headers headers{
        {"webhook-id", id}, {"webhook-timestamp", timestamp}, {"webhook-signature", signature}};
    return plain.Post("/v1/hooks/generic", headers, body, "application/json");
  };
  std::string good = callbridge::webhook::sign_standard_webhook(key, "msg_1", now, body);

  auto tampered =
      plain.Post("/v1/hooks/generic",
                 {{"webhook-id", "msg_1"}, {"webhook-timestamp", now}, {"webhook-signature", good}},
                 body + " ", "application/json");
  REQUIRE(tampered);
  CHECK(tampered->status == 401);
  CHECK(error_code(tampered) == "invalid_signature");
  auto stale_ts = std::to_string(std::stoll(now) - 3600);
  auto stale = deliver("msg_1", stale_ts,
                       callbridge::webhook::sign_standard_webhook(key, "msg_1", stale_ts, body));
  REQUIRE(stale);
  CHECK(stale->status == 401);
  CHECK(bridge.call("call_e2e").is_null());  // nothing was stored

  auto first = deliver("msg_1", now, good);
  REQUIRE(first);
  CHECK(first->status / 100 == 2);
  auto again = deliver("msg_1", now, good);
  REQUIRE(again);
  CHECK(again->status == first->status);
  CHECK(again->body.find("\"duplicate\":true") != std::string::npos);
  auto history = bridge.wait_done("call_e2e", 1);
  REQUIRE(history["events"].size() == 1);
  CHECK(history["variables"]["RESPONSE_AGENT_SEEN"] == "佐藤");
  CHECK(history["variables"]["QUEUE"] == "support");
}

TEST_CASE("the Pigeon manual's curl command and job flow work against the binary",
          "[e2e][escalation]") {
  Bridge bridge;
  bridge.write_config(R"(escalation:
  contacts:
    - { id: ops1, name: 運用一次, phone: "090-0000-0001" }
    - { id: ops2, name: 運用二次, phone: "090-0000-0002" }
  callflows:
    - { id: b8893b03-daca-489f-b41d-1043e6eafa3e, name: 障害連絡, loop_limit: 2, contacts: [ops1, ops2] }
  guidances:
    - id: fd09003c-1ef2-4988-8b30-4a9fbe9da402
      name: 障害通知
      message: "{{node}} で障害が発生しました。対応する場合は 1 を押してください。"
      responses:
        1: { type: terminate, message: 対応をお願いします。 }
        2: { type: continue, message: 次の担当者に連絡します。 }
  dialer:
    type: simulate
    script:
      ops1: [no-key, "key 2"]
      ops2: ["key 2", "key 1"]
  ring_timeout: 30
  pause_between_calls: 0
  pause_between_loops: 0
)");
  REQUIRE(bridge.start());
  const std::string base = "http://127.0.0.1:" + std::to_string(bridge.port());
  // The command generator's output (000 seed, section 7.3), host and token substituted.
  std::string command =
      "curl -s '" + base + "/api/apps/pigeon/chain/invoke' -X POST  \\\n" +
      "-H 'Content-Type: application/json' -H 'X-Authorization: Token " + kBridgeToken + "'  \\\n" +
      R"(-d '{"params":{"callflowId":"b8893b03-daca-489f-b41d-1043e6eafa3e","guidanceId":"fd09003c-1ef2-4988-8b30-4a9fbe9da402","parameters":{"node":"ウェブサーバ"}}}')";
  auto invoked = run_process({"/bin/sh", "-c", command});
  INFO(invoked.out << invoked.err);
  REQUIRE(invoked.exit_code == 0);
  auto res = json::parse(invoked.out);
  REQUIRE(res.contains("resultId"));

  // The job flow of the 001 seed: while is_active: sleep(wait_time); GET results/{resultId}.
  httplib::Client client("127.0.0.1", bridge.port());
  httplib::Headers head{{"X-Authorization", "Token " + kBridgeToken},
                        {"Content-Type", "application/json"}};
  json result;
  bool is_active = true;
  for (int i = 0; i < 500 && is_active; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // wait_time
    auto r = client.Get(("/api/apps/pigeon/results/" + res["resultId"].get<std::string>()).c_str(),
                        head);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    result = json::parse(r->body);
    is_active = result["isActive"].get<bool>();
  }
  REQUIRE_FALSE(is_active);
  // Loop 1: ops1 answered without a key, ops2 pressed 2 (continue); loop 2: ops1 pressed 2,
  // ops2 pressed 1 (terminate).
  CHECK(result["keyInput"] == "1");
  CHECK(result["status"] == "succeeded");
  // A wrong token is refused the Pigeon way too.
  auto denied =
      client.Get(("/api/apps/pigeon/results/" + res["resultId"].get<std::string>()).c_str(),
                 httplib::Headers{{"X-Authorization", "Token wrong-token-0123456789"}});
  REQUIRE(denied);
  CHECK(denied->status == 401);

  // `callbridge history` lists the chain and shows its attempts.
  auto list = run_process({CALLBRIDGE_BINARY, "history", "-c", bridge.config_path, "--chains"});
  REQUIRE(list.exit_code == 0);
  CHECK(list.out.find(res["resultId"].get<std::string>()) != std::string::npos);
  CHECK(list.out.find("succeeded") != std::string::npos);
  auto one = run_process({CALLBRIDGE_BINARY, "history", "-c", bridge.config_path, "--chain",
                          res["resultId"].get<std::string>()});
  REQUIRE(one.exit_code == 0);
  auto chain = json::parse(one.out);
  CHECK(chain["status"] == "succeeded");
  CHECK(chain["attempts"].size() == 4);
}

TEST_CASE(
    "the customer directory through the binary: any notation finds the customer, sync on "
    "demand from the command line",
    "[e2e][kintone]") {
  FakeKintone kintone;
  kintone.add_app(14, "record_no");
  kintone.add_api_token(14, "directory-token-14");
  kintone.insert_record(
      14, {{"電話番号", {{"value", "03-1234-5678"}}}, {"顧客名", {{"value", "山田商店"}}}});
  Bridge bridge;
  bridge.write_config(R"(rules:
  - name: greet
    event: inbound
    request: { url: "response://{CUSTOMER_FOUND} {CUSTOMER_NAME}" }
    extract: '/^(?P<SEEN>.*)$/'
)",
                      "kintone:\n  connections:\n    crm: { url: " + kintone.base_url() +
                          ", api_tokens: [directory-token-14] }\n  directory: { connection: crm, "
                          "app: 14, phone_fields: [電話番号], name_field: 顧客名, "
                          "interval_seconds: 3600 }\n");
  REQUIRE(bridge.start());
  // The import runs at start-up; ask for a sync to be sure it is complete.
  const std::string url = "http://127.0.0.1:" + std::to_string(bridge.port());
  auto sync =
      run_process({CALLBRIDGE_BINARY, "directory-sync", "-c", bridge.config_path, "--url", url});
  INFO(sync.out << sync.err);
  REQUIRE(sync.exit_code == 0);

  REQUIRE(bridge.post_event({{"event", "inbound"}, {"call_id", "D1"}, {"tel", "+81-3-1234-5678"}})
              ->status == 202);
  CHECK(bridge.wait_done("D1", 1)["variables"]["RESPONSE_SEEN"] == "1 山田商店");
  REQUIRE(
      bridge.post_event({{"event", "inbound"}, {"call_id", "D2"}, {"tel", "anonymous"}})->status ==
      202);
  CHECK(bridge.wait_done("D2", 1)["variables"]["RESPONSE_SEEN"] == "0 ");

  // A customer added in kintone is found after an on-demand sync.
  kintone.insert_record(
      14, {{"電話番号", {{"value", "06-9876-5432"}}}, {"顧客名", {{"value", "大阪物産"}}}});
  sync = run_process({CALLBRIDGE_BINARY, "directory-sync", "-c", bridge.config_path, "--url", url});
  REQUIRE(sync.exit_code == 0);
  REQUIRE(
      bridge.post_event({{"event", "inbound"}, {"call_id", "D3"}, {"tel", "0698765432"}})->status ==
      202);
  CHECK(bridge.wait_done("D3", 1)["variables"]["RESPONSE_SEEN"] == "1 大阪物産");
}
