// A PostgreSQL outage under load, through the real binary: a client posts events continuously
// while the database restarts and then stays down for a few seconds. The bridge answers 503
// journal_unavailable (with Retry-After) at once while it cannot commit, on every intake route,
// is not ready meanwhile, and recovers by itself: every event it acknowledged is in the journal,
// finished, and reached the CRM.
#include <httplib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
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
using Clock = std::chrono::steady_clock;

namespace {

// A CRM stand-in that counts the records it was sent, by marker.
class CountingCrm {
 public:
  CountingCrm() {
    server_.Post("/records", [this](const httplib::Request& req, httplib::Response& res) {
      auto body = json::parse(req.body, nullptr, false);
      if (body.is_object()) {
        std::lock_guard lock(mutex_);
        ++counts_[body.value("m", "")];
      }
      res.status = 201;
      res.set_content(R"({"id":"1"})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~CountingCrm() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/records"; }
  std::map<std::string, int> counts() {
    std::lock_guard lock(mutex_);
    return counts_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::map<std::string, int> counts_;
};

std::string outage_config(const std::string& url, const CountingCrm& crm) {
  return "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kBridgeToken +
         "\"]\n  drain_seconds: 0\nstorage:\n  postgres: \"" + url +
         "\"\ncommubo:\n  on_error_status: 503\n"
         "webhooks:\n  - name: hook\n    path: /v1/hooks/h\n    event: /type\n    call_id: /call\n"
         "dispatcher:\n  retry: { attempts: 8, backoff_ms: 100, max_backoff_ms: 500 }\n"
         "rules:\n  - name: to-crm\n    event: step\n    request:\n      method: POST\n"
         "      url: " +
         crm.url() + "\n      body: '{\"m\": \"{M}\"}'\n";
}

struct Sent {
  std::string marker;
  int status = 0;  // 0: no answer
  std::string code, retry_after;
  double seconds = 0;
};

// Posts events of call `m-<sender>-<n>` at about `per_second` until `stop`.
void send_events(const Bridge& bridge, int sender, int per_second, const std::atomic<bool>& stop,
                 std::vector<Sent>& out) {
  auto client = bridge.client();
  client.set_read_timeout(5, 0);
  const auto interval = std::chrono::microseconds(1000000 / per_second);
  auto next = Clock::now();
  for (int n = 0; !stop; ++n) {
    Sent s;
    s.marker = "m-" + std::to_string(sender) + "-" + std::to_string(n);
    json event = {{"event", "step"}, {"call_id", s.marker}, {"vars", {{"M", s.marker}}}};
    auto started = Clock::now();
    auto r = client.Post("/v1/events", event.dump(), "application/json");
    s.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    if (r) {
      s.status = r->status;
      s.code = r->status == 202 ? "" : error_code(r);
      s.retry_after = r->get_header_value("Retry-After");
    }
    out.push_back(std::move(s));
    next += interval;
    std::this_thread::sleep_until(next);
  }
}

// Polls /readyz until it answers `status` or `seconds` pass; its last body.
std::string wait_ready(const Bridge& bridge, int status, double seconds) {
  auto client = bridge.client();
  client.set_read_timeout(2, 0);
  auto until = Clock::now() + std::chrono::duration<double>(seconds);
  std::string body;
  while (true) {
    auto r = client.Get("/readyz");
    body = r ? r->body : "no answer";
    if ((r && r->status == status) || Clock::now() > until) return body;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

TEST_CASE("a database restart and outage under load lose no acknowledged event",
          "[postgres][outage]") {
  std::string skipped;
  PostgresServer* pg = PostgresServer::shared(skipped);
  if (!pg) {
    WARN(skipped);
    return;
  }
  std::string error;
  std::string url = pg->create_database(error);
  REQUIRE(!url.empty());
  CountingCrm crm;
  Bridge bridge;
  bridge.config_path = bridge.dir.write("callbridge.yaml", outage_config(url, crm));
  REQUIRE(bridge.start());
  INFO(bridge.process->log());
  REQUIRE(wait_ready(bridge, 200, 5) == R"({"ready":true})");

  // Two senders, about 150 events/s together.
  std::atomic<bool> stop{false};
  std::vector<Sent> sent[2];
  std::vector<std::thread> senders;
  for (int s = 0; s < 2; ++s)
    senders.emplace_back([&, s] { send_events(bridge, s, 75, stop, sent[s]); });

  std::this_thread::sleep_for(std::chrono::seconds(1));
  // pg_ctl restart: a fast shutdown, then a start.
  REQUIRE(pg->stop(error));
  REQUIRE(pg->start_again(error));
  std::this_thread::sleep_for(std::chrono::seconds(1));

  // Down for a few seconds.
  REQUIRE(pg->stop(error));
  auto down_at = Clock::now();
  std::string not_ready = wait_ready(bridge, 503, 5);
  auto hook = bridge.client().Post(
      "/v1/hooks/h", R"({"type": "inbound", "call": "hook-during-outage"})", "application/json");
  auto commubo = bridge.client().Post("/v1/commubo/inbound",
                                      R"({"callId": "commubo-during-outage", "callType": 1})",
                                      "application/json");
  std::this_thread::sleep_until(down_at + std::chrono::seconds(3));
  REQUIRE(pg->start_again(error));
  std::string ready_again = wait_ready(bridge, 200, 15);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop = true;
  for (auto& t : senders) t.join();

  INFO("not ready: " << not_ready);
  auto readiness = json::parse(not_ready, nullptr, false);
  REQUIRE(readiness.is_object());
  CHECK(readiness["ready"] == false);
  CHECK(readiness["reason"].get<std::string>().find("journal") != std::string::npos);
  CHECK(ready_again == R"({"ready":true})");

  // The other intake routes refuse the same way while the journal cannot commit.
  REQUIRE(hook);
  CHECK(hook->status == 503);
  CHECK(error_code(hook) == "journal_unavailable");
  CHECK(hook->get_header_value("Retry-After") == "1");
  REQUIRE(commubo);
  INFO("commubo: " << commubo->body);
  CHECK(commubo->status == 503);  // its on_error_status
  auto commubo_body = json::parse(commubo->body, nullptr, false);
  REQUIRE(commubo_body.is_object());
  CHECK(commubo_body.value("error", "").rfind("journal_unavailable", 0) == 0);

  // Every request was answered at once: 202, or 503 journal_unavailable with Retry-After.
  std::vector<std::string> acknowledged;
  int refused = 0, unexpected = 0, slow = 0;
  double slowest = 0;
  for (const auto& list : sent)
    for (const auto& s : list) {
      slowest = std::max(slowest, s.seconds);
      if (s.seconds > 2.0) ++slow;
      if (s.status == 202) {
        acknowledged.push_back(s.marker);
      } else if (s.status == 503 && s.code == "journal_unavailable" && s.retry_after == "1") {
        ++refused;
      } else {
        ++unexpected;
        UNSCOPED_INFO("unexpected answer: " << s.marker << " " << s.status << " " << s.code);
      }
    }
  WARN("events acknowledged " << acknowledged.size() << ", refused " << refused
                              << ", slowest answer " << slowest << " s");
  CHECK(unexpected == 0);
  CHECK(slow == 0);
  CHECK(refused > 0);  // the outage was seen
  CHECK(acknowledged.size() > 200);

  // Recovered by itself: every acknowledged event is finished and reached the CRM.
  int finished = 0, missing = 0, duplicates = 0;
  for (const auto& marker : acknowledged) {
    json call = bridge.wait_done(marker, 1);
    bool done =
        call.is_object() && call["events"].size() == 1 && call["events"][0]["state"] == "done";
    finished += done ? 1 : 0;
    if (!done) UNSCOPED_INFO("not finished: " << marker << " " << call.dump());
  }
  auto counts = crm.counts();
  std::string repeated;  // the attempts the journal shows for events the CRM saw more than once
  for (const auto& marker : acknowledged) {
    int n = counts.count(marker) ? counts[marker] : 0;
    missing += n == 0 ? 1 : 0;
    duplicates += n > 1 ? n - 1 : 0;
    if (n > 1) {
      repeated += "\n  " + marker + ":";
      json call = bridge.call(marker);
      for (const auto& a : call["events"][0]["actions"])
        repeated += " " + a.value("state", "?") + "#" + std::to_string(a.value("attempt", 0));
    }
  }
  WARN("CRM records: " << counts.size() << " markers, " << duplicates
                       << " duplicate requests for acknowledged events" << repeated);
  CHECK(finished == static_cast<int>(acknowledged.size()));
  CHECK(missing == 0);
  CHECK(duplicates == 0);  // a POST is never sent again blindly
}
