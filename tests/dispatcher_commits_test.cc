// What an action costs in journal commits, through the real binary: the event's append, each
// request's durable `started` record, and its outcome folded into the event's next durable write
// (the next rule's started record, or the finish). So one rule: append + started + finish.
// Also that callbridge_action_phase_seconds shows where the time went.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/fakes/bridge_harness.h"

using namespace callbridge::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A CRM on port 0 that answers every POST 201 with an ID.
class AnsweringCrm {
 public:
  AnsweringCrm() {
    server_.Post(".*", [](const httplib::Request&, httplib::Response& res) {
      res.status = 201;
      res.set_content(R"({"id":"41","revision":"1"})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~AnsweringCrm() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

std::string post_rule(const std::string& name, const std::string& event, const AnsweringCrm& crm,
                      const std::string& gate = "") {
  return "  - name: " + name + "\n    event: " + event + "\n" + gate +
         "    request:\n      method: POST\n      url: " + crm.url() +
         "/records\n      body: '{\"call\": \"{ID}\"}'\n";
}

// The value of a sample (name with its labels) in a /metrics page; NAN when it is missing.
double sample(const std::string& page, const std::string& name) {
  std::size_t at = page.find("\n" + name + " ");
  if (at == std::string::npos) return NAN;
  return std::strtod(page.c_str() + at + name.size() + 2, nullptr);
}

std::string metrics_page(const Bridge& bridge) {
  auto r = bridge.client().Get("/metrics");
  return r && r->status == 200 ? r->body : "";
}

double commits(const Bridge& bridge) {
  return sample(metrics_page(bridge), "callbridge_journal_commits_total");
}

// The commit count once no commit happened for 300 ms (the bridge writes once at start).
double quiet_commits(const Bridge& bridge) {
  double last = commits(bridge);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(300ms);
    double now = commits(bridge);
    if (now == last) break;
    last = now;
  }
  return last;
}

// Posts one event of `call` and waits until it is finished and its worker let it go; the
// journal commits it took.
double commits_of_event(const Bridge& bridge, const std::string& event, const std::string& call) {
  double before = quiet_commits(bridge);
  auto r = bridge.post_event({{"event", event}, {"call_id", call}});
  REQUIRE(r);
  REQUIRE(r->status == 202);
  CHECK(bridge.wait_done(call, 1)["events"][0]["state"] == "done");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (sample(metrics_page(bridge), "callbridge_queue_depth") != 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  return commits(bridge) - before;
}

}  // namespace

TEST_CASE("a one-rule event costs the append and two commits: started then outcome with finish",
          "[dispatcher][journal][metrics]") {
  AnsweringCrm crm;
  Bridge bridge;
  bridge.write_config(
      "rules:\n" + post_rule("one", "single", crm) + post_rule("first", "double", crm) +
      post_rule("second", "double", crm) +
      post_rule("gated", "gated", crm, "    when: { code: '{ID}', pattern: '/^never$/' }\n") +
      post_rule("after-gate", "gated", crm));
  REQUIRE(bridge.start());
  REQUIRE(commits(bridge) >= 0);

  CHECK(commits_of_event(bridge, "single", "c-1") == 3);
  // Two rules: the first outcome goes with the second started record.
  CHECK(commits_of_event(bridge, "double", "c-2") == 4);
  // A skipped gate sends nothing and is written with the next durable write.
  CHECK(commits_of_event(bridge, "gated", "c-3") == 3);

  // Every outcome is in the journal, in rule order.
  json two = bridge.call("c-2");
  REQUIRE(two["events"][0]["actions"].size() == 2);
  CHECK(two["events"][0]["actions"][0]["rule"] == "first");
  CHECK(two["events"][0]["actions"][0]["state"] == "succeeded");
  CHECK(two["events"][0]["actions"][1]["rule"] == "second");
  CHECK(two["events"][0]["actions"][1]["state"] == "succeeded");
  json gated = bridge.call("c-3");
  REQUIRE(gated["events"][0]["actions"].size() == 2);
  CHECK(gated["events"][0]["actions"][0]["state"] == "skipped");
  CHECK(gated["events"][0]["actions"][1]["state"] == "succeeded");

  std::string page = metrics_page(bridge);
  CHECK(sample(page, "callbridge_actions_completed_total") == 4);
  CHECK(sample(page, "callbridge_actions_total{outcome=\"succeeded\"}") == 4);
  CHECK(sample(page, "callbridge_actions_total{outcome=\"skipped\"}") == 1);
  CHECK(page.find("# TYPE callbridge_action_phase_seconds histogram\n") != std::string::npos);
  // Three events taken from the queue and finished; four requests, each after a started commit.
  CHECK(sample(page, "callbridge_action_phase_seconds_count{phase=\"queue\"}") == 3);
  CHECK(sample(page, "callbridge_action_phase_seconds_count{phase=\"prepare\"}") == 3);
  CHECK(sample(page, "callbridge_action_phase_seconds_count{phase=\"started_commit\"}") == 4);
  CHECK(sample(page, "callbridge_action_phase_seconds_count{phase=\"request\"}") == 4);
  CHECK(sample(page, "callbridge_action_phase_seconds_count{phase=\"finish_commit\"}") == 3);
  CHECK(bridge.process->stop(SIGTERM) == 0);
}
