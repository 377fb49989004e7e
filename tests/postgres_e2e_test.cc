// The real binary with its journal in PostgreSQL: events in, a rule to a fake CRM, a restart,
// the history intact; the `storage.postgres` setting's load errors; the password never shown.
#include <httplib.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "bridge/journal/postgres/connection.h"
#include "rules/config.h"
#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/postgres.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;
using nlohmann::json;

namespace {

const std::string kPassword = "pg-Secret-7c1e9a";

// A CRM that records the calls it was sent and answers 201.
class RecordingCrm {
 public:
  RecordingCrm() {
    server_.Post("/records", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mutex_);
        bodies_.push_back(req.body);
      }
      res.status = 201;
      res.set_content(R"({"id":"7","revision":"1"})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~RecordingCrm() {
    server_.stop();
    thread_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mutex_);
    return bodies_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::vector<std::string> bodies_;
};

std::string config_on(const std::string& url, const RecordingCrm& crm) {
  return "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kBridgeToken +
         "\"]\n  drain_seconds: 0\nstorage:\n  postgres: \"" + url +
         "\"\nrules:\n  - name: create-record\n    event: step\n    request:\n      method: "
         "POST\n      url: " +
         crm.base_url() + "/records\n      body: '{\"call\": \"{ID}\", \"n\": \"{N}\"}'\n";
}

}  // namespace

TEST_CASE("serve on PostgreSQL: events run their rule and survive a restart", "[postgres][e2e]") {
  std::string skipped;
  PostgresServer* pg = PostgresServer::shared(skipped);
  if (!pg) {
    WARN(skipped);
    return;
  }
  std::string error;
  std::string url = pg->create_database(error);
  REQUIRE(!url.empty());
  std::string database = url.substr(url.rfind('/') + 1);
  RecordingCrm crm;
  Bridge bridge;
  // The password comes from the environment (the server trusts local connections, so it is
  // not checked; what matters is that it is never shown).
  bridge.config_path =
      bridge.dir.write("callbridge.yaml", config_on(pg->url(database, "${CB_PG_PASSWORD}"), crm));
  std::map<std::string, std::string> env{{"CB_PG_PASSWORD", kPassword}};
  REQUIRE(bridge.start(env));

  for (int n = 1; n <= 3; ++n) {
    auto r = bridge.post_event(
        {{"event", "step"}, {"call_id", "P-1"}, {"vars", {{"N", std::to_string(n)}}}});
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 202);
  }
  json call = bridge.wait_done("P-1", 3);
  INFO(call.dump());
  REQUIRE(call.is_object());
  REQUIRE(call["events"].size() == 3);
  for (const auto& e : call["events"]) {
    CHECK(e["state"] == "done");
    CHECK(e["actions"].back()["state"] == "succeeded");
  }
  auto bodies = crm.bodies();
  REQUIRE(bodies.size() == 3);
  for (int n = 0; n < 3; ++n)  // in the call's order
    CHECK(json::parse(bodies[n])["n"] == std::to_string(n + 1));
  std::string first_log = bridge.process->log();
  CHECK(first_log.find("127.0.0.1:" + std::to_string(pg->port())) != std::string::npos);
  CHECK(bridge.process->stop(SIGTERM) == 0);

  // Restarted: the history is intact, nothing runs twice, new events continue after the old.
  REQUIRE(bridge.start(env));
  json again = bridge.call("P-1");
  INFO(again.dump());
  REQUIRE(again.is_object());
  CHECK(again["events"] == call["events"]);
  auto r = bridge.post_event({{"event", "step"}, {"call_id", "P-1"}, {"vars", {{"N", "4"}}}});
  REQUIRE(r);
  CHECK(r->status == 202);
  json after = bridge.wait_done("P-1", 4);
  REQUIRE(after["events"].size() == 4);
  CHECK(after["events"][3]["state"] == "done");
  CHECK(crm.bodies().size() == 4);
  std::string second_log = bridge.process->log();
  CHECK(bridge.process->stop(SIGTERM) == 0);

  auto history = run_process({CALLBRIDGE_BINARY, "history", "-c", bridge.config_path}, env);
  CHECK(history.exit_code == 0);
  CHECK(history.out.find("P-1") != std::string::npos);
  for (const std::string& text : {first_log, second_log, history.out, history.err}) {
    CHECK(text.find(kPassword) == std::string::npos);
  }
}

TEST_CASE("serve on an unreachable PostgreSQL fails with the URL but not its password",
          "[postgres][e2e]") {
  TempDir dir;
  RecordingCrm crm;
  // Nothing listens on the CRM's port for PostgreSQL's protocol once it is closed: use a port
  // that refuses connections (the CRM's, speaking HTTP, fails the start-up message instead).
  std::string url = "postgresql://bridge:" + kPassword + "@127.0.0.1:1/none?connect_timeout=2";
  std::string path = dir.write("callbridge.yaml", config_on(url, crm));
  auto r = run_process({CALLBRIDGE_BINARY, "serve", "-c", path});
  CHECK(r.exit_code != 0);
  INFO(r.err);
  CHECK(r.err.find("cannot open journal") != std::string::npos);
  CHECK(r.err.find("postgresql://bridge:[secret]@127.0.0.1:1/none") != std::string::npos);
  CHECK(r.err.find(kPassword) == std::string::npos);
  CHECK(r.out.find(kPassword) == std::string::npos);
}

TEST_CASE("storage.postgres: path and postgres together, and a URL that is not one",
          "[postgres][loader]") {
  auto both = callbridge::rules::load_config_text(
      "storage:\n  path: x.db\n  postgres: postgresql://u@h/db\n", "test.yaml",
      [](std::string_view) { return std::nullopt; });
  CHECK_FALSE(both.config);
  REQUIRE(both.errors.size() == 1);
  CHECK(both.errors[0].format() ==
        "test.yaml:3:13: error: \"storage\": \"path\" (an SQLite file) and \"postgres\" cannot "
        "both be set; keep one");
  auto not_url =
      callbridge::rules::load_config_text("storage:\n  postgres: host=db user=u\n", "test.yaml",
                                          [](std::string_view) { return std::nullopt; });
  REQUIRE(not_url.errors.size() == 1);
  CHECK(not_url.errors[0].format() ==
        "test.yaml:2:13: error: \"storage.postgres\": must be a postgresql:// URL");
  auto ok = callbridge::rules::load_config_text(
      "storage:\n  postgres: postgresql://u:${PGPW}@h:5432/db\n", "test.yaml",
      [](std::string_view name) -> std::optional<std::string> {
        if (name == "PGPW") return std::string("hunter2-long-password");
        return std::nullopt;
      });
  REQUIRE(ok.config);
  CHECK(ok.config->storage.postgres == "postgresql://u:hunter2-long-password@h:5432/db");
  CHECK(ok.config->secrets->redact(ok.config->storage.postgres) ==
        "postgresql://u:[secret]@h:5432/db");
  auto literal = callbridge::rules::load_config_text(
      "storage:\n  postgres: postgresql://u:inline-password-9@h/db\n", "test.yaml",
      [](std::string_view) { return std::nullopt; });
  REQUIRE(literal.config);
  CHECK(literal.config->secrets->redact("x inline-password-9 y") == "x [secret] y");
}

TEST_CASE("a PostgreSQL URL's password is redacted in every form libpq takes", "[postgres]") {
  using callbridge::bridge::pg::redact_conninfo;
  CHECK(redact_conninfo("postgresql://u:p4ss@h:5432/db?sslmode=require") ==
        "postgresql://u:[secret]@h:5432/db?sslmode=require");
  CHECK(redact_conninfo("postgresql://u@h/db?password=p4ss&sslmode=require") ==
        "postgresql://u@h/db?password=[secret]&sslmode=require");
  CHECK(redact_conninfo("host=h user=u password='p 4ss' dbname=db") ==
        "host=h user=u password=[secret] dbname=db");
  CHECK(redact_conninfo("postgresql://u@h/db") == "postgresql://u@h/db");
  CHECK(redact_conninfo("postgresql://h:5432/db") == "postgresql://h:5432/db");
}
