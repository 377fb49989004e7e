// `callbridge serve` end to end: the real binary, real HTTP, the fake kintone, kill -9.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;
using nlohmann::json;

namespace {

const std::string kBinary = CALLBRIDGE_BINARY;
const std::string kSamples = std::string(CALLBRIDGE_SOURCE_DIR) + "/samples";
const std::string kToken = kBridgeToken;

const char* kRecordRule = R"y(
rules:
  - name: record-step
    event: step
    request:
      method: POST
      url: {KINTONE}/k/v1/record.json
      auth: { type: kintone-token, token: app-token-1234 }
      body: '{"app": 1, "record": {"call": {"value": "{ID}"}, "n": {"value": "{N}"}}}'
)y";

// App 1 of the fake kintone, and a bridge whose `step` events each create a record there.
void setup_record_app(FakeKintone& kintone, Bridge& bridge, const std::string& rule_extra = "",
                      const std::string& config_extra = "") {
  kintone.add_app(1, "record_no");
  kintone.add_api_token(1, "app-token-1234");
  bridge.write_config(replace_all(kRecordRule, "{KINTONE}", kintone.base_url()) + rule_extra,
                      config_extra);
}

}  // namespace

TEST_CASE("a RemoTEL call sent as HTTP events lands in kintone", "[server][kintone]") {
  FakeKintone kintone;
  kintone.add_app(7, "record_no");
  kintone.add_api_token(7, "server-token-abcdef");
  Bridge bridge;
  std::string sample = replace_all(read_file(kSamples + "/remotel-api-token.yaml"),
                                   "https://example.cybozu.com", kintone.base_url());
  bridge.write_config(sample);
  REQUIRE(bridge.start({{"KINTONE_CUSTOMER_TOKEN", "server-token-abcdef"}}));

  auto r1 = bridge.post_event(
      {{"event", "着信"}, {"call_id", "S-1"}, {"tel", "0312345678"}, {"answered", false}});
  REQUIRE(r1);
  CHECK(r1->status == 202);
  auto body = json::parse(r1->body);
  CHECK(body["call_id"] == "S-1");
  CHECK(body["event_id"].get<std::string>().size() > 0);
  auto r2 = bridge.post_event({{"event", "hangup"}, {"call_id", "S-1"}, {"answered", true}});
  REQUIRE(r2);
  CHECK(r2->status == 202);

  json call = bridge.wait_done("S-1", 2);
  REQUIRE(call["events"].size() == 2);
  auto records = kintone.records(7);
  REQUIRE(records.size() == 1);
  CHECK(records[0]["電話番号"]["value"] == "0312345678");
  auto comments = kintone.comments(7, "1");
  REQUIRE(comments.size() == 1);
  CHECK(comments[0]["text"] == "通話がありました。https://pbx.example.jp:8000/monitor_link/S-1");
  // History: each rule's outcome, redacted request, extracted variables, the call's variables.
  const auto& first = call["events"][0]["actions"];
  REQUIRE(first.size() == 2);
  CHECK(first[0]["rule"] == "find-customer");
  CHECK(first[0]["state"] == "succeeded");
  CHECK(first[0]["extracted"]["RESPONSE_COUNT"] == "0");
  CHECK(call["variables"]["RESPONSE_ID"] == "1");
  CHECK(call.dump().find("server-token-abcdef") == std::string::npos);
  CHECK(call.dump().find("[secret]") != std::string::npos);
  CHECK(call["events"][1]["actions"][1]["state"] == "skipped");
  CHECK(bridge.process->stop(SIGTERM) == 0);
  CHECK(bridge.process->log().find("server-token-abcdef") == std::string::npos);
}

TEST_CASE("tokens - bad input and the documented errors", "[server][security]") {
  Bridge bridge;
  bridge.write_config("rules: []\n");
  REQUIRE(bridge.start());
  httplib::Client anonymous("127.0.0.1", bridge.process->port());
  anonymous.set_tcp_nodelay(true);
  std::string event = R"({"event":"inbound","call_id":"T-1"})";

  CHECK(anonymous.Post("/v1/events", event, "application/json")->status == 401);
  httplib::Headers wrong = {{"Authorization", "Bearer " + kToken + "x"}};
  CHECK(anonymous.Post("/v1/events", wrong, event, "application/json")->status == 401);
  CHECK(error_code(anonymous.Post("/v1/events", event, "application/json")) == "unauthorized");
  CHECK(anonymous.Get("/healthz")->status == 200);
  CHECK(anonymous.Get("/metrics")->status == 401);
  httplib::Headers header_token = {{"X-Callbridge-Token", kToken}};
  CHECK(anonymous.Post("/v1/events", header_token, event, "application/json")->status == 202);
  CHECK(anonymous.Post(("/v1/events?token=" + kToken).c_str(), event, "application/json")->status ==
        202);

  auto c = bridge.client();
  CHECK(error_code(c.Post("/v1/events", "{not json", "application/json")) == "invalid_json");
  CHECK(c.Post("/v1/events", "{not json", "application/json")->status == 400);
  CHECK(c.Post("/v1/events", std::string("{\"event\":\"inbound\",\"call_id\":\"\xff\"}"),
               "application/json")
            ->status == 400);
  CHECK(c.Post("/v1/events", R"({"event":"着信中","call_id":"X"})", "application/json")->status ==
        400);
  CHECK(c.Post("/v1/events", R"({"event":"inbound"})", "application/json")->status == 400);
  CHECK(c.Post("/v1/events", R"([1,2])", "application/json")->status == 400);
  CHECK(c.Post("/v1/events", "event=inbound", "text/plain")->status == 415);
  CHECK(c.Post("/v1/events", "event=inbound&call_id=%FF", "application/x-www-form-urlencoded")
            ->status == 400);
  auto big = c.Post("/v1/events", std::string(200000, 'x'), "application/json");
  REQUIRE(big);
  CHECK(big->status == 413);
  CHECK(error_code(big) == "too_large");
  // Nothing of the above was journaled.
  CHECK(bridge.call("X").is_null());

  // Form-encoded and GET intake.
  auto form =
      c.Post("/v1/events", "event=inbound&call_id=F-1&tel=0312345678&answered=1&var.AGENT=suzuki",
             "application/x-www-form-urlencoded");
  REQUIRE(form);
  CHECK(form->status == 202);
  auto get =
      c.Get(("/v1/events?event=hangup&call_id=F-1&var.REASON=normal&token=" + kToken).c_str());
  REQUIRE(get);
  CHECK(get->status == 202);
  json call = bridge.wait_done("F-1", 2);
  REQUIRE(call["events"].size() == 2);
  CHECK(call["events"][0]["input"]["vars"]["AGENT"] == "suzuki");
  CHECK(call["events"][0]["input"]["answered"] == true);
  CHECK(call["variables"]["REASON"] == "normal");
  CHECK(call["variables"]["TEL"] == "0312345678");

  auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("callbridge_events_accepted_total 4") != std::string::npos);
  CHECK(metrics->body.find("callbridge_events_rejected_total{reason=\"unauthorized\"} 4") !=
        std::string::npos);
}

TEST_CASE("200 interleaved calls keep per-call order", "[server][order]") {
  FakeKintone kintone;
  Bridge bridge;
  setup_record_app(kintone, bridge, "", "dispatcher:\n  workers: 8\n");
  REQUIRE(bridge.start());
  constexpr int kCalls = 200, kSteps = 4, kClients = 4;
  std::vector<std::thread> clients;
  std::atomic<int> accepted{0};
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      httplib::Client c = bridge.client();
      c.set_keep_alive(true);
      for (int step = 0; step < kSteps; ++step)
        for (int call = t; call < kCalls; call += kClients) {
          json e = {{"event", "step"},
                    {"call_id", "O-" + std::to_string(call)},
                    {"vars", {{"N", std::to_string(step)}}}};
          auto r = c.Post("/v1/events", e.dump(), "application/json");
          if (r && r->status == 202) accepted++;
        }
    });
  }
  for (auto& t : clients) t.join();
  REQUIRE(accepted == kCalls * kSteps);
  for (int call = 0; call < kCalls; ++call) bridge.wait_done("O-" + std::to_string(call), kSteps);
  auto records = kintone.records(1);
  REQUIRE(records.size() == kCalls * kSteps);
  std::map<std::string, std::vector<std::string>> seen;
  for (const auto& r : records) seen[r["call"]["value"]].push_back(r["n"]["value"]);
  for (const auto& [call, steps] : seen) {
    INFO(call);
    CHECK(steps == std::vector<std::string>{"0", "1", "2", "3"});
  }
}

TEST_CASE("a CRM that is down gets every action once it is back", "[server][retry]") {
  FakeKintone kintone;
  Bridge bridge;
  setup_record_app(
      kintone, bridge,
      "    retry: { attempts: 20, backoff_ms: 20, max_backoff_ms: 100, on: [connect, 5xx] }\n");
  kintone.fail_next(15, 503, R"({"code":"CB_SM01","id":"x","message":"maintenance"})");
  REQUIRE(bridge.start());
  for (int i = 0; i < 5; ++i) {
    auto r = bridge.post_event(
        {{"event", "step"}, {"call_id", "D-" + std::to_string(i)}, {"vars", {{"N", "0"}}}});
    INFO(bridge.process->log());
    REQUIRE(r);
    CHECK(r->status == 202);
  }
  for (int i = 0; i < 5; ++i) bridge.wait_done("D-" + std::to_string(i), 1);
  INFO(bridge.process->log());
  CHECK(kintone.records(1).size() == 5);
  json call = bridge.call("D-0");
  auto actions = call["events"][0]["actions"];
  REQUIRE(actions.size() >= 2);
  CHECK(actions[0]["state"] == "retrying");
  CHECK(actions[actions.size() - 1]["state"] == "succeeded");
}

TEST_CASE("a CRM that refuses connections is retried by default until it is up",
          "[server][retry]") {
  // A port bound but not listening refuses connections, and no other test running in parallel
  // can take it before the CRM comes up on it.
  int reserved = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // not in the bridge
  REQUIRE(reserved >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(reserved, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t length = sizeof addr;
  REQUIRE(::getsockname(reserved, reinterpret_cast<sockaddr*>(&addr), &length) == 0);
  int port = ntohs(addr.sin_port);
  Bridge bridge;
  std::string rule =
      replace_all(kRecordRule, "{KINTONE}", "http://127.0.0.1:" + std::to_string(port));
  bridge.write_config(rule + "    retry: { backoff_ms: 50, max_backoff_ms: 200 }\n");
  REQUIRE(bridge.start());
  for (int i = 0; i < 3; ++i)
    REQUIRE(
        bridge
            .post_event(
                {{"event", "step"}, {"call_id", "P-" + std::to_string(i)}, {"vars", {{"N", "0"}}}})
            ->status == 202);
  // Every call has failed at least once before the CRM comes up.
  for (int i = 0; i < 3; ++i) {
    bool failed_once = false;
    for (int n = 0; n < 1000 && !failed_once; ++n) {
      json call = bridge.call("P-" + std::to_string(i));
      failed_once = call.is_object() && !call["events"][0]["actions"].empty();
      if (!failed_once) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(failed_once);
  }
  ::close(reserved);
  FakeKintone kintone(port);
  REQUIRE(kintone.port() == port);
  kintone.add_app(1, "record_no");
  kintone.add_api_token(1, "app-token-1234");
  for (int i = 0; i < 3; ++i) {
    json call = bridge.wait_done("P-" + std::to_string(i), 1);
    auto actions = call["events"][0]["actions"];
    CHECK(actions[0]["state"] == "retrying");
    CHECK(actions[actions.size() - 1]["state"] == "succeeded");
  }
  CHECK(kintone.records(1).size() == 3);
}

TEST_CASE(
    "a POST that timed out is recorded as unknown - not repeated - replay re-runs dead letters",
    "[server][retry]") {
  FakeKintone kintone;
  Bridge bridge;
  setup_record_app(kintone, bridge, "    retry: { attempts: 2, backoff_ms: 10 }\n");
  bridge.dir.write("callbridge.yaml", replace_all(read_file(bridge.config_path),
                                                  "      body:", "      timeout: 1\n      body:"));
  REQUIRE(bridge.start());
  kintone.set_response_delay(std::chrono::milliseconds(1500));
  REQUIRE(
      bridge.post_event({{"event", "step"}, {"call_id", "U-1"}, {"vars", {{"N", "0"}}}})->status ==
      202);
  json call = bridge.wait_done("U-1", 1);
  auto actions = call["events"][0]["actions"];
  REQUIRE(actions.size() == 1);
  CHECK(actions[0]["state"] == "unknown");
  kintone.set_response_delay(std::chrono::milliseconds(0));
  // The delayed request did reach the fake; it was not sent a second time.
  CHECK(kintone.requests().size() == 1);

  auto history = run_process({kBinary, "history", "-c", bridge.config_path, "--failures"});
  CHECK(history.exit_code == 0);
  CHECK(history.out.find("U-1") != std::string::npos);
  CHECK(history.out.find("record-step") != std::string::npos);

  auto replay = run_process({kBinary, "replay", "-c", bridge.config_path, "--all"});
  INFO(replay.out << replay.err);
  CHECK(replay.exit_code == 0);
  CHECK(replay.out.find("1 replayed, 0 failed") != std::string::npos);
  CHECK(kintone.requests().size() == 2);
  auto again = run_process({kBinary, "replay", "-c", bridge.config_path, "--list"});
  CHECK(again.out.empty());
}

TEST_CASE("kill -9 under load loses no acknowledged event and duplicates nothing",
          "[server][crash]") {
  FakeKintone kintone;
  Bridge bridge;
  setup_record_app(kintone, bridge);
  REQUIRE(bridge.start());
  kintone.set_response_delay(std::chrono::milliseconds(2));
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::set<std::string> acknowledged;
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      httplib::Client c = bridge.client();
      c.set_keep_alive(true);
      for (int i = 0; !stop; ++i) {
        std::string id = "K-" + std::to_string(t) + "-" + std::to_string(i);
        auto r = c.Post("/v1/events",
                        json({{"event", "step"}, {"call_id", id}, {"vars", {{"N", "0"}}}}).dump(),
                        "application/json");
        if (!r) break;
        if (r->status == 202) {
          std::lock_guard lock(mutex);
          acknowledged.insert(id);
        }
      }
    });
  }
  while (true) {
    {
      std::lock_guard lock(mutex);
      if (acknowledged.size() >= 300) break;
    }
    std::this_thread::yield();
  }
  kill(bridge.process->pid(), SIGKILL);
  stop = true;
  for (auto& t : clients) t.join();
  bridge.process->stop(SIGKILL);
  kintone.set_response_delay(std::chrono::milliseconds(0));

  REQUIRE(bridge.start());  // same journal
  CHECK(bridge.process->log().find("\"recovered_events\"") != std::string::npos);
  std::size_t unknown = 0;
  for (const auto& id : acknowledged) {
    json call = bridge.wait_done(id, 1);
    INFO(id);
    REQUIRE(call.is_object());
    CHECK(call["events"][0]["state"] == "done");
    for (const auto& a : call["events"][0]["actions"]) unknown += a["state"] == "unknown";
  }
  std::map<std::string, int> per_call;
  for (const auto& r : kintone.records(1)) per_call[r["call"]["value"]]++;
  for (const auto& [id, n] : per_call) {
    INFO(id);
    CHECK(n == 1);  // no duplicates
  }
  // Every acknowledged event created its record, except an interrupted POST left as unknown.
  std::size_t created = 0;
  for (const auto& id : acknowledged) created += per_call.count(id);
  CHECK(created + unknown >= acknowledged.size());
}

TEST_CASE("SIGHUP reloads rules - an invalid file keeps the old ones", "[server][reload]") {
  Bridge bridge;
  bridge.write_config(
      "rules:\n  - { name: one, event: inbound, request: { url: \"response://one\" } }\n");
  REQUIRE(bridge.start());
  std::string good = read_file(bridge.config_path);
  bridge.dir.write("callbridge.yaml",
                   good + "  - { name: broken, event: 着信中, request: { url: \"ftp://x\" } }\n");
  bridge.process->signal(SIGHUP);
  CHECK(bridge.process->wait_for_log("keeping the rules in force"));
  CHECK(bridge.process->log().find("unknown event") != std::string::npos);
  REQUIRE(bridge.post_event({{"event", "inbound"}, {"call_id", "R-1"}})->status == 202);
  json call = bridge.wait_done("R-1", 1);
  REQUIRE(call["events"][0]["actions"].size() == 1);

  bridge.dir.write(
      "callbridge.yaml",
      good + "  - { name: two, event: inbound, order: 1, request: { url: \"response://two\" } }\n");
  bridge.process->signal(SIGHUP);
  CHECK(bridge.process->wait_for_log("rules reloaded"));
  REQUIRE(bridge.post_event({{"event", "inbound"}, {"call_id", "R-2"}})->status == 202);
  call = bridge.wait_done("R-2", 1);
  CHECK(call["events"][0]["actions"].size() == 2);
  CHECK(bridge.process->stop(SIGTERM) == 0);
}

TEST_CASE("a full queue answers 503 with Retry-After", "[server][backpressure]") {
  FakeKintone kintone;
  Bridge bridge;
  setup_record_app(kintone, bridge, "", "dispatcher:\n  workers: 1\n  queue_capacity: 2\n");
  kintone.set_response_delay(std::chrono::milliseconds(1000));
  REQUIRE(bridge.start());
  int busy = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = bridge.post_event(
        {{"event", "step"}, {"call_id", "B-" + std::to_string(i)}, {"vars", {{"N", "0"}}}});
    REQUIRE(r);
    if (r->status == 503) {
      ++busy;
      // Derived from the backlog and the drain rate (tests [backlog]), within 1 to 30 s.
      int retry_after = std::atoi(r->get_header_value("Retry-After").c_str());
      CHECK(retry_after >= 1);
      CHECK(retry_after <= 30);
      CHECK(error_code(r) == "busy");
    }
  }
  CHECK(busy == 2);
  kintone.set_response_delay(std::chrono::milliseconds(0));
}
