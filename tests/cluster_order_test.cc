// Three `callbridge serve` nodes on one PostgreSQL database: a call's events sent to different
// nodes still reach the CRM in the call's order, and every node runs actions.
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

std::string step_rule(const CountingCrm& crm) {
  return "  - name: crm\n    event: step\n    request:\n      method: POST\n      url: " +
         crm.base_url() +
         "/records\n      headers:\n        X-Node: \"{NODE}\"\n      body: '{\"call\": \"{ID}\", "
         "\"n\": \"{N}\"}'\n";
}

}  // namespace

TEST_CASE("cluster: 200 interleaved calls over three nodes keep each call's order",
          "[cluster][postgres]") {
  CountingCrm crm;
  Cluster cluster({3, 2, step_rule(crm), ""});
  std::string skipped;
  if (!cluster.ready(skipped)) {
    WARN(skipped);
    return;
  }
  REQUIRE(cluster.start_all());
  constexpr int kCalls = 200, kSteps = 3, kClients = 4;
  // Step n of call c goes to node (c + n) % 3, so each call's events land on every node; all
  // calls' step n are sent (by several clients at once) before any step n + 1.
  for (int n = 1; n <= kSteps; ++n) {
    std::vector<std::thread> clients;
    std::vector<int> refused(kClients, 0);
    for (int k = 0; k < kClients; ++k)
      clients.emplace_back([&, k] {
        for (int c = k; c < kCalls; c += kClients) {
          json event{{"event", "step"},
                     {"call_id", "C-" + std::to_string(c)},
                     {"vars", {{"N", std::to_string(n)}}}};
          auto r = cluster.post_event((c + n) % 3, event);
          if (!r || r->status != 202) ++refused[static_cast<std::size_t>(k)];
        }
      });
    for (auto& t : clients) t.join();
    for (int k = 0; k < kClients; ++k) CHECK(refused[static_cast<std::size_t>(k)] == 0);
  }
  REQUIRE(crm.wait_for(kCalls * kSteps, 60s));
  // Settled: nothing pending, nothing sent twice.
  for (int i = 0; i < 500; ++i) {
    auto pending = cluster.query("SELECT count(*) FROM events WHERE state = 'pending'");
    if (!pending.empty() && pending[0] == "0") break;
    std::this_thread::sleep_for(20ms);
  }
  CHECK(cluster.query("SELECT count(*) FROM events WHERE state = 'pending'") ==
        std::vector<std::string>{"0"});
  std::this_thread::sleep_for(200ms);
  auto requests = crm.requests();
  CHECK(requests.size() == kCalls * kSteps);

  std::map<std::string, std::vector<std::string>> by_call;
  std::map<std::string, int> by_node;
  for (const auto& r : requests) {
    json body = json::parse(r.body);
    by_call[body["call"]].push_back(body["n"]);
    by_node[r.node]++;
  }
  CHECK(by_call.size() == kCalls);
  for (const auto& [call, steps] : by_call) {
    INFO(call);
    CHECK(steps == std::vector<std::string>{"1", "2", "3"});
  }
  INFO("actions by node: " << json(by_node).dump());
  CHECK(by_node.size() == 3);  // every node ran actions
  for (const auto& [node, count] : by_node) CHECK(count >= kCalls / 10);
  // Every event has exactly one attempt, which succeeded.
  CHECK(cluster.query("SELECT count(*) FROM actions WHERE state = 'succeeded' AND attempt = 1") ==
        std::vector<std::string>{std::to_string(kCalls * kSteps)});
  CHECK(cluster.query("SELECT count(*) FROM actions") ==
        std::vector<std::string>{std::to_string(kCalls * kSteps)});
}
