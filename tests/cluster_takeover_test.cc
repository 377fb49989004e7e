// Takeover on one PostgreSQL database: a node that dies (kill -9) or stops past its lease
// (SIGSTOP) loses its calls to another node, which finishes them under the crash rules (a POST
// after `started` becomes `unknown`, an idempotent request is sent again); the stopped node,
// resumed, cannot write for the calls it lost.
#include <signal.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/fakes/cluster_harness.h"

using namespace callbridge::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// `step` POSTs (not idempotent), `update` PUTs (idempotent).
std::string rules(const CountingCrm& crm) {
  std::string common = "    request:\n      url: " + crm.base_url() +
                       "/records\n      headers:\n        X-Node: \"{NODE}\"\n      body: "
                       "'{\"call\": \"{ID}\", \"n\": \"{N}\"}'\n      timeout: 20\n";
  return "  - name: create\n    event: step\n" +
         replace_all(common, "    request:\n", "    request:\n      method: POST\n") +
         "  - name: update\n    event: update\n" +
         replace_all(common, "    request:\n", "    request:\n      method: PUT\n");
}

json event(const std::string& name, const std::string& call, int n) {
  return {{"event", name}, {"call_id", call}, {"vars", {{"N", std::to_string(n)}}}};
}

// The states of each attempt of each event of the call, as node `node` shows them.
std::vector<std::vector<std::string>> attempts(const json& call) {
  std::vector<std::vector<std::string>> out;
  if (!call.is_object()) return out;
  for (const auto& e : call["events"]) {
    std::vector<std::string> states;
    for (const auto& a : e["actions"]) states.push_back(a["state"]);
    out.push_back(states);
  }
  return out;
}

}  // namespace

TEST_CASE("cluster: after kill -9 of the node holding a call, another node finishes it",
          "[cluster][postgres]") {
  CountingCrm crm;
  Cluster cluster({2, 1, rules(crm), ""});
  std::string skipped;
  if (!cluster.ready(skipped)) {
    WARN(skipped);
    return;
  }
  REQUIRE(cluster.start_all());
  crm.set_delay(5s);  // node 0's requests are in flight when it dies
  int served = -1;
  auto r = cluster.post_event(0, event("step", "K-1", 1), &served);
  REQUIRE(r);
  CHECK(r->status == 202);
  CHECK(served == 0);
  REQUIRE(cluster.post_event(0, event("update", "K-2", 1)));
  REQUIRE(crm.wait_for(2, 10s));
  // Queued on node 0 behind the requests in flight.
  for (int n = 2; n <= 3; ++n) {
    auto more = cluster.post_event(0, event("step", "K-1", n));
    REQUIRE(more);
    CHECK(more->status == 202);
  }
  auto killed_at = std::chrono::steady_clock::now();
  cluster.kill(0);
  crm.set_delay(0ms);

  json k1 = cluster.wait_done("K-1", 3);
  json k2 = cluster.wait_done("K-2", 1);
  auto took = std::chrono::steady_clock::now() - killed_at;
  INFO(k1.dump() << "\n" << k2.dump());
  // The POST in flight: `unknown`, not sent again; the queued events ran after it, in order.
  CHECK(attempts(k1) ==
        std::vector<std::vector<std::string>>{{"unknown"}, {"succeeded"}, {"succeeded"}});
  // The PUT in flight: sent again (attempt 2).
  REQUIRE(attempts(k2).size() == 1);
  CHECK(attempts(k2)[0].back() == "succeeded");
  std::vector<std::string> k1_steps, k2_steps, k1_nodes;
  for (const auto& req : crm.requests()) {
    json body = json::parse(req.body);
    if (body["call"] == "K-1") {
      k1_steps.push_back(body["n"]);
      k1_nodes.push_back(req.node);
    } else {
      k2_steps.push_back(req.method);
    }
  }
  CHECK(k1_steps == std::vector<std::string>{"1", "2", "3"});
  CHECK(k1_nodes == std::vector<std::string>{"node-0", "node-1", "node-1"});
  CHECK(k2_steps == std::vector<std::string>{"PUT", "PUT"});
  // Takeover within the lease and a few polls.
  CHECK(took < 8s);
}

TEST_CASE("cluster: a node stopped past its lease cannot write for the calls it lost",
          "[cluster][postgres]") {
  CountingCrm crm;
  Cluster cluster({2, 1, rules(crm), ""});
  std::string skipped;
  if (!cluster.ready(skipped)) {
    WARN(skipped);
    return;
  }
  REQUIRE(cluster.start_all());
  constexpr int kCalls = 5;
  crm.set_delay(3s);  // slow CRM: node 0's requests are in progress when it stops
  for (int c = 0; c < kCalls; ++c) {
    int served = -1;
    auto r = cluster.post_event(0, event("step", "F-" + std::to_string(c), 1), &served);
    REQUIRE(r);
    CHECK(r->status == 202);
    CHECK(served == 0);
  }
  REQUIRE(crm.wait_for(kCalls, 10s));
  cluster.process(0).signal(SIGSTOP);
  crm.set_delay(0ms);

  // Node 1 takes the calls over after the lease: the POSTs were `started`, so `unknown`.
  for (int c = 0; c < kCalls; ++c) {
    json call = cluster.wait_done_on(1, "F-" + std::to_string(c), 1);
    INFO(call.dump());
    CHECK(attempts(call) == std::vector<std::vector<std::string>>{{"unknown"}});
  }
  auto owners = cluster.query("SELECT DISTINCT owner FROM leases WHERE name LIKE 'call:F-%'");
  CHECK(owners.size() == 1);

  // Resumed: its requests get their answers (the CRM held them 3 s), and its outcome records are
  // refused: the journal keeps node 1's.
  cluster.process(0).signal(SIGCONT);
  CHECK(cluster.process(0).wait_for_log("a fenced write was refused", 15));
  std::this_thread::sleep_for(500ms);
  for (int c = 0; c < kCalls; ++c) {
    json call = cluster.call_on(1, "F-" + std::to_string(c));
    INFO(call.dump());
    CHECK(attempts(call) == std::vector<std::vector<std::string>>{{"unknown"}});
  }
  CHECK(cluster.query("SELECT count(*) FROM actions WHERE state <> 'unknown'") ==
        std::vector<std::string>{"0"});
  CHECK(cluster.query("SELECT DISTINCT owner FROM leases WHERE name LIKE 'call:F-%'") == owners);
  CHECK(crm.count() == kCalls);  // nothing sent twice

  // Node 0 works again for what it holds anew.
  auto r = cluster.post_event(0, event("step", "F-new", 1));
  REQUIRE(r);
  CHECK(r->status == 202);
  json fresh = cluster.wait_done_on(0, "F-new", 1);
  CHECK(attempts(fresh) == std::vector<std::vector<std::string>>{{"succeeded"}});
  CHECK(crm.count() == kCalls + 1);
}
