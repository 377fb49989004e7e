// Delivery-ID de-duplication across nodes: two `callbridge serve` processes on one PostgreSQL
// database receive the same webhook deliveries at once; for each delivery ID exactly one copy is
// accepted as new and stored, every other copy is answered as a duplicate of it.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/postgres.h"

using namespace callbridge::testing;
using nlohmann::json;

namespace {

std::string node_config(const std::string& url) {
  return "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kBridgeToken +
         "\"]\n  drain_seconds: 0\nstorage:\n  postgres: \"" + url +
         "\"\nwebhooks:\n  - name: hook\n    path: /v1/hooks/h\n    event: /type\n"
         "    call_id: /call\n    delivery_id: /id\nrules: []\n";
}

struct Answer {
  int status = 0;
  bool duplicate = false;
  std::string event_id;
};

}  // namespace

TEST_CASE("two nodes on one database accept each delivery ID once", "[cluster][postgres]") {
  std::string skipped;
  PostgresServer* pg = PostgresServer::shared(skipped);
  if (!pg) {
    WARN(skipped);
    return;
  }
  std::string error;
  std::string url = pg->create_database(error);
  REQUIRE(!url.empty());
  Bridge nodes[2];
  for (auto& node : nodes) {
    node.config_path = node.dir.write("callbridge.yaml", node_config(url));
    REQUIRE(node.start());
  }

  // Four senders go through the same deliveries in the same order, two on each node, so the
  // copies of one delivery arrive at both nodes at about the same time.
  constexpr int kDeliveries = 60, kSenders = 4;
  std::mutex mutex;
  std::map<int, std::vector<Answer>> answers;
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s)
    senders.emplace_back([&, s] {
      auto client = nodes[s % 2].client();
      for (int d = 0; d < kDeliveries; ++d) {
        json body = {{"id", "delivery-" + std::to_string(d)},
                     {"type", "inbound"},
                     {"call", "dedupe-" + std::to_string(d)}};
        auto r = client.Post("/v1/hooks/h", body.dump(), "application/json");
        Answer a;
        if (r) {
          a.status = r->status;
          auto j = json::parse(r->body, nullptr, false);
          if (j.is_object()) {
            a.duplicate = j.value("duplicate", false);
            a.event_id = j.value("event_id", "");
          }
        }
        std::lock_guard lock(mutex);
        answers[d].push_back(a);
      }
    });
  for (auto& t : senders) t.join();

  int exactly_one_new = 0, statuses_ok = 0, same_event = 0;
  for (const auto& [d, list] : answers) {
    int fresh = 0, ok = 0;
    std::string first;
    bool same = true;
    for (const auto& a : list) {
      ok += a.status == 200 ? 1 : 0;
      fresh += a.status == 200 && !a.duplicate ? 1 : 0;
      if (first.empty()) first = a.event_id;
      same &= a.event_id == first && !first.empty();
    }
    exactly_one_new += fresh == 1 ? 1 : 0;
    statuses_ok += ok == kSenders ? 1 : 0;
    same_event += same ? 1 : 0;
  }
  CHECK(answers.size() == kDeliveries);
  CHECK(statuses_ok == kDeliveries);  // every copy answered 200: new or duplicate
  CHECK(exactly_one_new == kDeliveries);
  CHECK(same_event == kDeliveries);  // duplicates name the event the new copy stored

  // The journal holds one event per delivery, whichever node is asked.
  int stored_once = 0;
  for (int d = 0; d < kDeliveries; ++d) {
    json call = nodes[d % 2].call("dedupe-" + std::to_string(d));
    stored_once += call.is_object() && call["events"].size() == 1 ? 1 : 0;
  }
  CHECK(stored_once == kDeliveries);
}
