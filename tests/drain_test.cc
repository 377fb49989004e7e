// Draining through the real binary: on SIGTERM the node turns not ready first (/readyz 503
// "draining") and keeps serving everything for server.drain_seconds, then stops; a second SIGTERM
// stops it at once.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "tests/fakes/bridge_harness.h"

using namespace callbridge::testing;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// A bridge with no rules whose drain lasts `seconds`.
void start_draining_bridge(Bridge& bridge, int seconds) {
  bridge.write_config("rules: []\n");
  bridge.config_path = bridge.dir.write(
      "callbridge.yaml", replace_all(read_file(bridge.config_path), "drain_seconds: 0",
                                     "drain_seconds: " + std::to_string(seconds)));
  REQUIRE(bridge.start());
}

// Polls /readyz until it answers `status` (or ~5 s pass); the last answer.
httplib::Result wait_ready_status(const Bridge& bridge, int status) {
  auto client = bridge.client();
  httplib::Result r = client.Get("/readyz");
  for (int i = 0; i < 500 && (!r || r->status != status); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    r = client.Get("/readyz");
  }
  return r;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

TEST_CASE("SIGTERM drains: not ready, still serving, then the process exits", "[drain]") {
  Bridge bridge;
  start_draining_bridge(bridge, 2);
  INFO(bridge.process->log());
  auto ready = wait_ready_status(bridge, 200);
  REQUIRE(ready);
  CHECK(ready->body == R"({"ready":true})");

  auto signalled = Clock::now();
  bridge.process->signal(SIGTERM);
  auto not_ready = wait_ready_status(bridge, 503);
  REQUIRE(not_ready);
  CHECK(not_ready->status == 503);
  CHECK(json::parse(not_ready->body) == json({{"ready", false}, {"reason", "draining"}}));

  // Everything else is served as before while the load balancer moves traffic away.
  auto health = bridge.client().Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  std::vector<std::string> accepted;
  for (int i = 0; i < 5; ++i) {
    auto r = bridge.post_event({{"event", "inbound"}, {"call_id", "drain-" + std::to_string(i)}});
    REQUIRE(r);
    CHECK(r->status == 202);
    if (r && r->status == 202) accepted.push_back(json::parse(r->body)["event_id"]);
  }
  CHECK(seconds_since(signalled) < 2.0);  // all of that happened inside the drain
  CHECK(bridge.process->wait_for_log("\"draining\""));

  // Signal 0 only waits: the drain ends by itself and the process exits cleanly.
  CHECK(bridge.process->stop(0) == 0);
  double took = seconds_since(signalled);
  CHECK(took >= 1.9);
  CHECK(took < 8.0);

  // What was acknowledged during the drain is in the journal.
  bridge.config_path = bridge.dir.write(
      "callbridge.yaml",
      replace_all(read_file(bridge.config_path), "drain_seconds: 2", "drain_seconds: 0"));
  REQUIRE(bridge.start());
  for (int i = 0; i < 5; ++i) {
    json call = bridge.call("drain-" + std::to_string(i));
    REQUIRE(call.is_object());
    REQUIRE(call["events"].size() == 1);
    CHECK(call["events"][0]["state"] == "done");
  }
  CHECK(accepted.size() == 5);
}

TEST_CASE("a second SIGTERM during the drain stops at once", "[drain]") {
  Bridge bridge;
  start_draining_bridge(bridge, 120);
  INFO(bridge.process->log());
  bridge.process->signal(SIGTERM);
  auto not_ready = wait_ready_status(bridge, 503);
  REQUIRE(not_ready);
  CHECK(not_ready->status == 503);
  auto second = Clock::now();
  CHECK(bridge.process->stop(SIGTERM) == 0);
  CHECK(seconds_since(second) < 5.0);
  CHECK(bridge.process->log().find("drain cut short") != std::string::npos);
}

TEST_CASE("drain_seconds 0 stops at once", "[drain]") {
  Bridge bridge;
  start_draining_bridge(bridge, 0);
  INFO(bridge.process->log());
  auto signalled = Clock::now();
  CHECK(bridge.process->stop(SIGINT) == 0);
  CHECK(seconds_since(signalled) < 5.0);
  CHECK(bridge.process->log().find("\"draining\"") == std::string::npos);
}
