// Cluster-wide singletons through the real binaries: three `callbridge serve` nodes on one
// PostgreSQL database. The kintone directory is synced by one node per interval and found on
// every node; pruning runs on one node and moves when it dies; an escalation chain survives
// kill -9 of its owner and nobody is called twice for a step.
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/fake_pigeon.h"
#include "tests/fakes/postgres.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr int kLeaseSeconds = 2;

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// N nodes on one database, each with its own node_id and scratch directory.
struct Cluster {
  std::string url;
  std::vector<std::unique_ptr<Bridge>> nodes;

  // False (with a warning) when PostgreSQL cannot run here.
  bool prepare() {
    std::string skipped;
    PostgresServer* pg = PostgresServer::shared(skipped);
    if (!pg) {
      WARN(skipped);
      return false;
    }
    std::string error;
    url = pg->create_database(error);
    INFO(error);
    REQUIRE(!url.empty());
    return true;
  }

  void start(int count, const std::string& sections) {
    for (int i = 0; i < count; ++i) {
      auto node = std::make_unique<Bridge>();
      node->config_path = node->dir.write(
          "callbridge.yaml", "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kBridgeToken +
                                 "\"]\n  drain_seconds: 0\nstorage:\n  postgres: \"" + url +
                                 "\"\ncluster:\n  node_id: node-" + std::to_string(i + 1) +
                                 "\n  lease_seconds: " + std::to_string(kLeaseSeconds) + "\n" +
                                 sections);
      INFO("node " << i + 1);
      REQUIRE(node->start());
      nodes.push_back(std::move(node));
    }
  }
};

// A telephony gateway for the webhook dialer: every call rings `ring` and is not answered.
// Records "CONTACT@LOOP" per call placed.
class CountingGateway {
 public:
  explicit CountingGateway(std::chrono::milliseconds ring) : ring_(ring) {
    server_.Post("/dial", [this](const httplib::Request& req, httplib::Response& res) {
      auto body = json::parse(req.body, nullptr, false);
      {
        std::lock_guard lock(mutex_);
        calls_.push_back(body["contact"]["id"].get<std::string>() + "@" +
                         std::to_string(body["loop"].get<int>()));
      }
      std::this_thread::sleep_for(ring_);
      res.set_content(R"({"outcome":"missed"})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~CountingGateway() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/dial"; }
  std::vector<std::string> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::chrono::milliseconds ring_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::vector<std::string> calls_;
};

}  // namespace

TEST_CASE(
    "three nodes: the kintone directory is synced once per interval and every node finds a new "
    "customer, pruning runs on one node",
    "[postgres][e2e][cluster][singleton]") {
  Cluster cluster;
  if (!cluster.prepare()) return;
  FakeKintone kintone;
  kintone.add_app(14, "record_no");
  kintone.add_api_token(14, "directory-token-14");
  kintone.insert_record(
      14, {{"電話番号", {{"value", "03-1234-5678"}}}, {"顧客名", {{"value", "山田商店"}}}});
  const int interval = 10;  // the smallest interval_seconds
  cluster.start(3, R"(rules:
  - name: greet
    event: inbound
    request: { url: "response://{CUSTOMER_FOUND} {CUSTOMER_NAME}" }
    extract: '/^(?P<SEEN>.*)$/'
kintone:
  connections:
    crm: { url: )" + kintone.base_url() +
                       R"(, api_tokens: [directory-token-14] }
  directory: { connection: crm, app: 14, phone_fields: [電話番号], name_field: 顧客名, interval_seconds: )" +
                       std::to_string(interval) + " }\n");

  auto customers = [](const Bridge& node) {
    auto r = node.client().Get("/v1/kintone/directory");
    if (!r || r->status != 200) return -1;
    return json::parse(r->body).value("customers", -1);
  };
  // The first import reaches every node through the shared state.
  for (auto& node : cluster.nodes) REQUIRE(eventually([&] { return customers(*node) == 1; }, 20s));

  // Pruning: one node holds singleton:prune and prunes; the others do not.
  REQUIRE(eventually(
      [&] {
        int pruning = 0;
        for (auto& node : cluster.nodes)
          pruning += node->process->log().find("pruned old calls") != std::string::npos;
        return pruning == 1;
      },
      10s));
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseSeconds));
  int pruning = 0;
  for (auto& node : cluster.nodes)
    pruning += node->process->log().find("pruned old calls") != std::string::npos;
  CHECK(pruning == 1);

  // Over three intervals the directory is read once per interval, by one node: an
  // incremental sync is one request (three nodes each syncing would make nine).
  auto before = kintone.api_requests(14);
  std::this_thread::sleep_for(std::chrono::seconds(3 * interval));
  auto during = kintone.api_requests(14) - before;
  CHECK(during >= 2);
  CHECK(during <= 4);

  // A customer added in kintone is found on every node after the next sync.
  kintone.insert_record(
      14, {{"電話番号", {{"value", "06-9876-5432"}}}, {"顧客名", {{"value", "大阪物産"}}}});
  for (std::size_t i = 0; i < cluster.nodes.size(); ++i) {
    auto& node = *cluster.nodes[i];
    INFO("node " << i + 1);
    REQUIRE(
        eventually([&] { return customers(node) == 2; }, std::chrono::seconds(2 * interval + 5)));
    std::string call = "N" + std::to_string(i + 1);
    REQUIRE(
        node.post_event({{"event", "inbound"}, {"call_id", call}, {"tel", "0698765432"}})->status ==
        202);
    CHECK(node.wait_done(call, 1)["variables"]["RESPONSE_SEEN"] == "1 大阪物産");
  }

  // The pruning node dies: another takes singleton:prune over within the lease.
  std::size_t holder = 0;
  for (std::size_t i = 0; i < cluster.nodes.size(); ++i)
    if (cluster.nodes[i]->process->log().find("pruned old calls") != std::string::npos) holder = i;
  cluster.nodes[holder]->process->stop(SIGKILL);
  REQUIRE(eventually(
      [&] {
        for (std::size_t i = 0; i < cluster.nodes.size(); ++i)
          if (i != holder &&
              cluster.nodes[i]->process->log().find("pruned old calls") != std::string::npos)
            return true;
        return false;
      },
      std::chrono::seconds(3 * kLeaseSeconds + 5)));
  int took_over = 0;
  for (std::size_t i = 0; i < cluster.nodes.size(); ++i)
    if (i != holder)
      took_over += cluster.nodes[i]->process->log().find("pruned old calls") != std::string::npos;
  CHECK(took_over == 1);
}

TEST_CASE(
    "three nodes: an escalation chain survives kill -9 of its owner and each contact of each step "
    "is called once",
    "[postgres][e2e][cluster][singleton]") {
  Cluster cluster;
  if (!cluster.prepare()) return;
  CountingGateway gateway(1500ms);
  cluster.start(3, R"(escalation:
  contacts:
    - { id: c1, name: 一番, phone: "090-0000-0001" }
    - { id: c2, name: 二番, phone: "090-0000-0002" }
    - { id: c3, name: 三番, phone: "090-0000-0003" }
  callflows:
    - { id: flow, name: 当番, loop_limit: 2, contacts: [c1, c2, c3] }
  guidances:
    - { id: g, name: 障害, message: "{{node}} で障害", responses: { 1: terminate } }
  dialer: { type: webhook, url: )" +
                       gateway.url() + R"(, timeout: 10, callback_base: "http://127.0.0.1:9" }
  ring_timeout: 5
)");
  Bridge& owner = *cluster.nodes[0];
  auto r = owner.client().Post(
      "/api/apps/pigeon/chain/invoke",
      R"({"params":{"callflowId":"flow","guidanceId":"g","parameters":{"node":"web"}}})",
      "application/json");
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == 200);
  std::string chain = json::parse(r->body)["resultId"];

  // The owner dies while the second contact's phone rings.
  REQUIRE(eventually([&] { return gateway.calls().size() == 2; }, 20s));
  owner.process->stop(SIGKILL);

  // Another node continues the chain after the lease: the ringing call is not placed again,
  // the chain goes on with the next contact and ends after the second loop.
  auto result = [&](const Bridge& node) {
    auto got = node.client().Get(("/api/apps/pigeon/results/" + chain).c_str());
    return got && got->status == 200 ? json::parse(got->body) : json();
  };
  json done;
  REQUIRE(eventually(
      [&] {
        done = result(*cluster.nodes[1]);
        return done.is_object() && done["isActive"] == false;
      },
      60s));
  INFO(done.dump());
  CHECK(done["status"] == "failed");
  CHECK(gateway.calls() ==
        std::vector<std::string>{"c1@1", "c2@1", "c3@1", "c1@2", "c2@2", "c3@2"});
  REQUIRE(done["history"].size() == 6);
  CHECK(done["history"][1]["result"] == "failed");  // interrupted by its owner's death
  for (int i : {0, 2, 3, 4, 5}) CHECK(done["history"][i]["result"] == "missed");
  // Both surviving nodes agree.
  CHECK(result(*cluster.nodes[2])["history"] == done["history"]);
}

TEST_CASE(
    "three nodes: a chain running on Kompira Pigeon survives kill -9 of its owner and is invoked "
    "once",
    "[postgres][e2e][cluster][singleton]") {
  Cluster cluster;
  if (!cluster.prepare()) return;
  FakePigeon pigeon("pigeon-token");
  pigeon.add_contact("c-01", "担当者 01", "090-1111-0001");
  pigeon.add_contact("c-02", "担当者 02", "090-1111-0002");
  pigeon.add_callflow("flow-p", "障害連絡", 2, {"c-01", "c-02"});
  pigeon.add_guidance("guide-p", "障害通知", "{{node}}で障害",
                      {{1, {"terminate", "対応をお願いします。"}}});
  pigeon.script("c-01", {"no-key"});
  pigeon.script("c-02", {"no-answer", "key 1"});
  pigeon.set_polls_until_done(6);
  cluster.start(3, "escalation:\n  dialer: { type: pigeon, url: " + pigeon.base_url() +
                       ", token: pigeon-token, timeout: 5 }\n  poll_interval: 1\n"
                       "  poll_max_interval: 1\n");
  Bridge& owner = *cluster.nodes[0];
  auto r = owner.client().Post(
      "/api/apps/pigeon/chain/invoke",
      R"({"params":{"callflowId":"flow-p","guidanceId":"guide-p","parameters":{"node":"db"}}})",
      "application/json");
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == 200);
  std::string chain = json::parse(r->body)["resultId"];

  // The owner dies while the chain runs on Pigeon (invoked, being polled).
  REQUIRE(eventually([&] { return pigeon.requests().size() >= 2; }, 20s));
  owner.process->stop(SIGKILL);

  json done;
  REQUIRE(eventually(
      [&] {
        auto got = cluster.nodes[2]->client().Get(("/api/apps/pigeon/results/" + chain).c_str());
        done = got && got->status == 200 ? json::parse(got->body) : json();
        return done.is_object() && done["isActive"] == false;
      },
      60s));
  INFO(done.dump());
  CHECK(done["status"] == "succeeded");
  CHECK(done["keyInput"] == "1");
  CHECK(pigeon.invocations().size() == 1);  // continued by polling, never invoked again
  CHECK(pigeon.calls() == std::vector<std::string>{"c-01@1", "c-02@1", "c-01@2", "c-02@2"});
}
