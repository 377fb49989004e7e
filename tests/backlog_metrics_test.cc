// The backlog as an operator and a PBX see it: callbridge_backlog_oldest_seconds and
// callbridge_actions_completed_total in /metrics, and `busy` answered at once with a
// Retry-After when actions cannot keep up. Through the real binary, with a CRM that holds
// every request until the test lets it answer.
#include <httplib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bridge/backlog.h"
#include "tests/fakes/bridge_harness.h"

using namespace callbridge::testing;
using callbridge::bridge::Backlog;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A CRM on port 0 that receives every request and answers none until release().
class HoldingCrm {
 public:
  HoldingCrm() {
    server_.new_task_queue = [] { return new httplib::ThreadPool(8); };
    auto hold = [this](const httplib::Request& req, httplib::Response& res) {
      std::unique_lock lock(mutex_);
      bodies_.push_back(req.body);
      received_.notify_all();
      // Bounded so a failing test cannot hang: far beyond anything the test waits for.
      released_.wait_for(lock, 120s, [this] { return open_; });
      res.set_content("{\"id\":\"1\",\"revision\":\"1\"}", "application/json");
    };
    server_.Post(".*", hold);
    server_.Put(".*", hold);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~HoldingCrm() {
    release();
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void release() {
    std::lock_guard lock(mutex_);
    open_ = true;
    released_.notify_all();
  }
  // Holds requests again from now on.
  void hold() {
    std::lock_guard lock(mutex_);
    open_ = false;
  }
  // Waits (up to 20 s) until `count` requests arrived; true when they did.
  bool wait_received(std::size_t count) {
    std::unique_lock lock(mutex_);
    return received_.wait_for(lock, 20s, [&] { return bodies_.size() >= count; });
  }
  std::vector<std::string> bodies() const {
    std::lock_guard lock(mutex_);
    return bodies_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable received_, released_;
  std::vector<std::string> bodies_;
  bool open_ = false;
};

// One rule: every `step` event POSTs its call ID to the CRM. The timeout is longer than any
// hold in these tests, so a held request succeeds once released.
std::string rule_config(const HoldingCrm& crm, const std::string& method = "POST") {
  return "rules:\n"
         "  - name: post-step\n"
         "    event: step\n"
         "    request:\n"
         "      method: " +
         method +
         "\n"
         "      url: " +
         crm.url() +
         "/records\n"
         "      timeout: 60\n"
         "      body: '{\"call\": \"{ID}\"}'\n";
}

// The value of an unlabelled sample in a /metrics page; NAN when it is missing.
double sample(const std::string& page, const std::string& name) {
  std::size_t at = page.find("\n" + name + " ");
  if (at == std::string::npos) return NAN;
  return std::strtod(page.c_str() + at + name.size() + 2, nullptr);
}

std::string metrics_page(const Bridge& bridge) {
  auto r = bridge.client().Get("/metrics");
  return r && r->status == 200 ? r->body : "";
}

// The journal shows an event done a moment before its worker hands the event's slot back:
// polls until the queue is empty (up to 10 s), then returns the page.
std::string drained_page(const Bridge& bridge) {
  std::string page = metrics_page(bridge);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (sample(page, "callbridge_queue_depth") != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    page = metrics_page(bridge);
  }
  return page;
}

}  // namespace

TEST_CASE("the oldest unfinished event's age grows while the CRM holds it and is 0 after drain",
          "[backlog][metrics]") {
  HoldingCrm crm;
  Bridge bridge;
  bridge.write_config(rule_config(crm), "dispatcher:\n  workers: 1\n");
  REQUIRE(bridge.start());

  std::string page = metrics_page(bridge);
  CHECK(page.find("# TYPE callbridge_actions_completed_total counter\n") != std::string::npos);
  CHECK(page.find("# HELP callbridge_actions_completed_total ") != std::string::npos);
  CHECK(page.find("# TYPE callbridge_backlog_oldest_seconds gauge\n") != std::string::npos);
  CHECK(page.find("# HELP callbridge_backlog_oldest_seconds ") != std::string::npos);
  CHECK(sample(page, "callbridge_backlog_oldest_seconds") == 0);
  CHECK(sample(page, "callbridge_actions_completed_total") == 0);

  auto first = bridge.post_event({{"event", "step"}, {"call_id", "held-1"}});
  REQUIRE(first);
  REQUIRE(first->status == 202);
  REQUIRE(crm.wait_received(1));
  // A second call queued behind the held one: the gauge still follows the oldest.
  auto second = bridge.post_event({{"event", "step"}, {"call_id", "held-2"}});
  REQUIRE(second);
  REQUIRE(second->status == 202);

  double before = sample(metrics_page(bridge), "callbridge_backlog_oldest_seconds");
  CHECK(before >= 0);
  // The age grows with time while nothing finishes: poll until it passed a second.
  double later = before;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (later < before + 1.0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    later = sample(metrics_page(bridge), "callbridge_backlog_oldest_seconds");
  }
  CHECK(later >= before + 1.0);
  page = metrics_page(bridge);
  CHECK(sample(page, "callbridge_actions_completed_total") == 0);
  CHECK(sample(page, "callbridge_queue_depth") == 2);

  crm.release();
  CHECK(bridge.wait_done("held-1", 1)["events"][0]["state"] == "done");
  CHECK(bridge.wait_done("held-2", 1)["events"][0]["state"] == "done");
  page = drained_page(bridge);
  CHECK(sample(page, "callbridge_actions_completed_total") == 2);
  CHECK(sample(page, "callbridge_backlog_oldest_seconds") == 0);
  CHECK(sample(page, "callbridge_queue_depth") == 0);
  CHECK(bridge.process->stop(SIGTERM) == 0);
}

TEST_CASE("after kill -9 the gauge counts a recovered event's age from when it was received",
          "[backlog][metrics][recovery]") {
  HoldingCrm crm;
  Bridge bridge;
  // PUT is idempotent: the interrupted request is sent again after the restart and held again.
  bridge.write_config(rule_config(crm, "PUT"), "dispatcher:\n  workers: 1\n");
  REQUIRE(bridge.start());
  auto accepted = bridge.post_event({{"event", "step"}, {"call_id", "recovered-1"}});
  REQUIRE(accepted);
  REQUIRE(accepted->status == 202);
  auto received = std::chrono::steady_clock::now();
  REQUIRE(crm.wait_received(1));
  // Let it age past a second, far longer than a restart takes, so a gauge reset by the restart
  // would show.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (sample(metrics_page(bridge), "callbridge_backlog_oldest_seconds") < 1.0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  bridge.process->stop(SIGKILL);

  REQUIRE(bridge.start());
  REQUIRE(crm.wait_received(2));
  std::chrono::duration<double> since_received = std::chrono::steady_clock::now() - received;
  double age = sample(metrics_page(bridge), "callbridge_backlog_oldest_seconds");
  // Not reset by the restart: at least the time since the first acknowledgement (the journal
  // keeps milliseconds; allow for that rounding).
  CHECK(since_received.count() >= 1.0);
  CHECK(age >= since_received.count() - 0.05);
  CHECK(age < since_received.count() + 5);

  crm.release();
  CHECK(bridge.wait_done("recovered-1", 1)["events"][0]["state"] == "done");
  auto page = drained_page(bridge);
  CHECK(sample(page, "callbridge_backlog_oldest_seconds") == 0);
  CHECK(sample(page, "callbridge_actions_completed_total") == 1);
  CHECK(bridge.process->stop(SIGTERM) == 0);
}

TEST_CASE("a full queue answers busy at once with Retry-After and loses nothing acknowledged",
          "[backlog][backpressure]") {
  HoldingCrm crm;
  Bridge bridge;
  bridge.write_config(rule_config(crm), "dispatcher:\n  workers: 1\n  queue_capacity: 3\n");
  REQUIRE(bridge.start());

  struct Answer {
    std::string call_id;
    int status = 0;
    std::string code, retry_after;
    std::chrono::milliseconds took{0};
  };
  constexpr int kThreads = 8, kPerThread = 6;
  std::vector<Answer> answers(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client client = bridge.client();
      for (int i = 0; i < kPerThread; ++i) {
        Answer& a = answers[static_cast<std::size_t>(t * kPerThread + i)];
        a.call_id = "bp-" + std::to_string(t) + "-" + std::to_string(i);
        json event = {{"event", "step"}, {"call_id", a.call_id}};
        auto started = std::chrono::steady_clock::now();
        auto r = client.Post("/v1/events", event.dump(), "application/json");
        a.took = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started);
        if (!r) continue;
        a.status = r->status;
        a.code = error_code(r);
        a.retry_after = r->get_header_value("Retry-After");
      }
    });
  }
  for (auto& t : threads) t.join();

  std::set<std::string> accepted, refused;
  for (const auto& a : answers) {
    INFO(a.call_id << ": " << a.status << " " << a.code << " in " << a.took.count() << " ms");
    // A correctness bound, not a benchmark: the CRM holds its request for a minute, so a
    // caller that waited for the queue would take far longer than this.
    CHECK(a.took < 2000ms);
    if (a.status == 202) {
      accepted.insert(a.call_id);
    } else {
      CHECK(a.status == 503);
      CHECK(a.code == "busy");
      // Nothing has finished yet: the measured drain rate is 0, so the longest wait is asked.
      CHECK(a.retry_after == "30");
      refused.insert(a.call_id);
    }
  }
  // Nothing finishes while the CRM holds the first request: exactly the queue's capacity.
  CHECK(accepted.size() == 3);
  CHECK(accepted.size() + refused.size() == answers.size());
  // Acknowledged means in the journal; refused means nothing stored.
  for (const auto& id : accepted) CHECK(bridge.call(id).is_object());
  for (const auto& id : refused) CHECK(bridge.call(id).is_null());
  auto page = metrics_page(bridge);
  CHECK(sample(page, "callbridge_events_rejected_total{reason=\"busy\"}") ==
        static_cast<double>(refused.size()));

  crm.release();
  for (const auto& id : accepted) {
    json call = bridge.wait_done(id, 1);
    REQUIRE(call["events"].size() == 1);
    CHECK(call["events"][0]["state"] == "done");
    CHECK(call["events"][0]["actions"][0]["state"] == "succeeded");
  }
  // The CRM got each acknowledged event once and nothing else.
  std::multiset<std::string> delivered;
  for (const auto& body : crm.bodies()) delivered.insert(json::parse(body)["call"]);
  CHECK(delivered == std::multiset<std::string>(accepted.begin(), accepted.end()));
  page = drained_page(bridge);
  CHECK(sample(page, "callbridge_actions_completed_total") == 3);
  CHECK(sample(page, "callbridge_backlog_oldest_seconds") == 0);

  // Events have now finished within the last seconds: a full queue asks for its drain time at
  // that rate (3 events over the few seconds the bridge has run), no longer the maximum.
  crm.hold();
  int busy = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = bridge.post_event({{"event", "step"}, {"call_id", "again-" + std::to_string(i)}});
    REQUIRE(r);
    if (r->status != 503) continue;
    ++busy;
    CHECK(error_code(r) == "busy");
    int retry_after = std::atoi(r->get_header_value("Retry-After").c_str());
    CHECK(retry_after >= 1);
    CHECK(retry_after < 30);
  }
  CHECK(busy == 1);
  crm.release();
  CHECK(bridge.process->stop(SIGTERM) == 0);
}

TEST_CASE("Retry-After is the backlog's drain time at the measured rate, from 1 to 30 s",
          "[backlog]") {
  auto t0 = Backlog::Clock::now();
  Backlog backlog(t0);
  CHECK(backlog.retry_after(0, t0) == 1s);
  // Nothing finished yet: the longest wait.
  CHECK(backlog.retry_after(5, t0) == 30s);
  CHECK(backlog.oldest_seconds(t0) == 0);

  std::vector<Backlog::Entry> entries;
  for (int i = 0; i < 40; ++i) entries.push_back(backlog.add(t0 + std::chrono::milliseconds(i)));
  CHECK(backlog.oldest_seconds(t0 + 3s) == Approx(3.0));
  // 40 events finished within 2 s of the start: 20 per second.
  auto t2 = t0 + 2s;
  for (auto& entry : entries) backlog.finish(entry, t2);
  CHECK(backlog.oldest_seconds(t2) == 0);
  CHECK(backlog.drain_per_second(t2) == Approx(20.0));
  CHECK(backlog.retry_after(10, t2) == 1s);     // 0.5 s rounds up to the minimum
  CHECK(backlog.retry_after(100, t2) == 5s);    // 100 events at 20/s
  CHECK(backlog.retry_after(101, t2) == 6s);    // rounded up
  CHECK(backlog.retry_after(5000, t2) == 30s);  // bounded
  // The rate is over the last 10 s: a minute later nothing counts any more.
  CHECK(backlog.drain_per_second(t2 + 60s) == 0);
  CHECK(backlog.retry_after(100, t2 + 60s) == 30s);
}
