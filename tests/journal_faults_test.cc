// The journal under faults, through the real binary: an outcome that cannot be recorded, a
// damaged, emptied or torn journal, and `callbridge journal check`.
#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;
using nlohmann::json;

namespace {

const std::string kBinary = CALLBRIDGE_BINARY;

// A CRM that counts what reaches it and answers 201; `on_request` runs before it answers.
class CountingCrm {
 public:
  CountingCrm() {
    auto handle = [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mutex_);
        ++requests_[req.method];
      }
      if (on_request) on_request(req);
      res.status = 201;
      res.set_content(R"({"id":"7","revision":"1"})", "application/json");
    };
    server_.Post("/records", handle);
    server_.Put("/records", handle);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~CountingCrm() {
    server_.stop();
    thread_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int count(const std::string& method) {
    std::lock_guard lock(mutex_);
    return requests_[method];
  }
  std::function<void(const httplib::Request&)> on_request;  // set before events arrive

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::map<std::string, int> requests_;
};

// Another process's write transaction on the journal: the bridge's writes wait for it, then fail
// with "database is locked", as they would on a full disk or a failing device.
class JournalWriteLock {
 public:
  explicit JournalWriteLock(const std::string& path) {
    sqlite3_open(path.c_str(), &db_);
    sqlite3_busy_timeout(db_, 10000);
    locked_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~JournalWriteLock() { release(); }
  bool locked() const { return locked_; }
  void release() {
    if (!db_) return;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
    db_ = nullptr;
  }

 private:
  sqlite3* db_ = nullptr;
  bool locked_ = false;
};

// GET `path` until it answers `status` (up to `seconds`); the last answer's body.
std::string wait_status(const Bridge& bridge, const std::string& path, int status,
                        int seconds = 30) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::string body;
  while (std::chrono::steady_clock::now() < until) {
    httplib::Client c("127.0.0.1", bridge.port());
    c.set_read_timeout(2, 0);
    auto r = c.Get(path.c_str());
    if (r) {
      body = r->body;
      if (r->status == status) return body;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "(still not " + std::to_string(status) + ") " + body;
}

std::string rule_for(const std::string& method, const CountingCrm& crm) {
  return R"y(
rules:
  - name: create-record
    event: step
    request:
      method: )y" +
         method + R"y(
      url: )y" +
         crm.base_url() +
         R"y(/records
      body: '{"call": "{ID}"}'
)y";
}

std::int64_t id_number(const std::string& event_id) {
  return std::stoll(event_id.substr(3));
}

}  // namespace

TEST_CASE("an outcome that cannot be journaled is treated like a crash after sending",
          "[journal][faults]") {
  CountingCrm crm;
  Bridge bridge;
  std::string method = GENERATE(std::string("POST"), std::string("PUT"));
  INFO(method);
  bridge.write_config(rule_for(method, crm));
  std::string journal_path = bridge.dir.path() + "/journal.db";
  std::unique_ptr<JournalWriteLock> lock;
  // The request reaches the CRM; from then on the journal cannot be written.
  crm.on_request = [&](const httplib::Request&) {
    if (!lock) lock = std::make_unique<JournalWriteLock>(journal_path);
  };
  REQUIRE(bridge.start());
  CHECK(wait_status(bridge, "/readyz", 200) == R"({"ready":true})");

  auto accepted = bridge.post_event({{"event", "step"}, {"call_id", "F-1"}});
  REQUIRE(accepted);
  REQUIRE(accepted->status == 202);

  // The outcome cannot be recorded: not ready, still alive, and nothing sent twice meanwhile.
  std::string not_ready = wait_status(bridge, "/readyz", 503);
  INFO(not_ready);
  auto readiness = json::parse(not_ready, nullptr, false);
  REQUIRE(readiness.is_object());
  CHECK(readiness["ready"] == false);
  CHECK(readiness["reason"].get<std::string>().find("locked") != std::string::npos);
  REQUIRE(lock);
  CHECK(lock->locked());
  auto health = bridge.client().Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(crm.count(method) == 1);

  SECTION("the journal works again") {
    lock->release();
    json call = bridge.wait_done("F-1", 1);
    INFO(call.dump());
    REQUIRE(call.is_object());
    CHECK(call["events"][0]["state"] == "done");
    const json& actions = call["events"][0]["actions"];
    REQUIRE_FALSE(actions.empty());
    if (method == "POST") {
      // It may have been created: never sent again.
      CHECK(crm.count("POST") == 1);
      CHECK(actions.back()["state"] == "unknown");
    } else {
      // A PUT may be repeated: sent again and recorded.
      CHECK(crm.count("PUT") == 2);
      CHECK(actions.back()["state"] == "succeeded");
    }
    CHECK(wait_status(bridge, "/readyz", 200) == R"({"ready":true})");
  }

  SECTION("the bridge is killed before the journal works again") {
    bridge.process->stop(SIGKILL);
    lock->release();
    REQUIRE(bridge.start());
    json call = bridge.wait_done("F-1", 1);
    INFO(call.dump());
    REQUIRE(call.is_object());
    CHECK(call["events"][0]["state"] == "done");
    CHECK(crm.count(method) == (method == "POST" ? 1 : 2));
    CHECK(call["events"][0]["actions"].back()["state"] ==
          (method == "POST" ? "unknown" : "succeeded"));
  }
}

TEST_CASE("journal check finds garbage written into the middle of a journal and serve refuses it",
          "[journal][faults]") {
  Bridge bridge;
  bridge.write_config("");
  std::string path = bridge.dir.path() + "/journal.db";
  REQUIRE(bridge.start());
  std::string pad(2000, 'p');
  for (int i = 0; i < 150; ++i) {
    auto r = bridge.post_event(
        {{"event", "note"}, {"call_id", "G-" + std::to_string(i)}, {"vars", {{"PAD", pad}}}});
    REQUIRE(r);
    REQUIRE(r->status == 202);
  }
  CHECK(bridge.process->stop(SIGTERM) == 0);
  CHECK_FALSE(std::filesystem::exists(path + "-wal"));  // checkpointed on a clean stop

  auto sound = run_process({kBinary, "journal", "check", "-c", bridge.config_path});
  INFO(sound.out << sound.err);
  CHECK(sound.exit_code == 0);
  CHECK(sound.out == "ok\n");

  // 80 KB of garbage in the middle of the file.
  auto size = std::filesystem::file_size(path);
  REQUIRE(size > 200 * 1024);
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
    std::mt19937 rng(15);
    std::string garbage(80 * 1024, '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto damaged = run_process({kBinary, "journal", "check", "-c", bridge.config_path});
  INFO(damaged.out << damaged.err);
  CHECK(damaged.exit_code == 1);
  CHECK(damaged.out.find(path + ": ") == 0);
  CHECK(damaged.out.find("ok\n") == std::string::npos);

  CHECK_FALSE(bridge.start());
  std::string log = bridge.process->log();
  INFO(log);
  CHECK(log.find("journal " + path + " is damaged") != std::string::npos);
  CHECK(log.find("docs/reliability.md") != std::string::npos);
}

TEST_CASE("an emptied journal is refused, not started afresh", "[journal][faults]") {
  Bridge bridge;
  bridge.write_config("");
  std::string path = bridge.dir.path() + "/journal.db";
  bridge.dir.write("journal.db", "");
  CHECK_FALSE(bridge.start());
  std::string log = bridge.process->log();
  INFO(log);
  CHECK(log.find("journal " + path + " is empty (0 bytes)") != std::string::npos);
  CHECK(std::filesystem::file_size(path) == 0);  // left as found

  auto check = run_process({kBinary, "journal", "check", "-c", bridge.config_path});
  CHECK(check.exit_code == 1);
  CHECK(check.out.find(path + " is empty (0 bytes)") != std::string::npos);

  // Deleted on purpose: a new journal.
  std::filesystem::remove(path);
  REQUIRE(bridge.start());
}

TEST_CASE("after a torn WAL no acknowledged event ID is given again", "[journal][faults]") {
  Bridge bridge;
  bridge.write_config("");
  std::string path = bridge.dir.path() + "/journal.db";
  REQUIRE(bridge.start());
  std::int64_t highest = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = bridge.post_event({{"event", "note"}, {"call_id", "T-" + std::to_string(i)}});
    REQUIRE(r);
    REQUIRE(r->status == 202);
    highest = std::max(highest, id_number(json::parse(r->body)["event_id"].get<std::string>()));
  }
  bridge.process->stop(SIGKILL);
  auto wal = std::filesystem::file_size(path + "-wal");
  REQUIRE(wal > 0);
  std::filesystem::resize_file(path + "-wal", wal / 2);

  REQUIRE(bridge.start());
  auto r = bridge.post_event({{"event", "note"}, {"call_id", "T-after"}});
  REQUIRE(r);
  REQUIRE(r->status == 202);
  std::string id = json::parse(r->body)["event_id"];
  INFO(id << " after " << highest);
  CHECK(id_number(id) > highest);
}
