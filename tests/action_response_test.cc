// Each attempt keeps its response: status and body, the body capped at 4 KiB with secrets
// redacted and marked when cut; stored by both journal backends (and added to a journal from
// before the column), carried to the call's history, /v1/calls/{id} and the console's call page.
#include <httplib.h>
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "bridge/action_record.h"
#include "bridge/history.h"
#include "bridge/journal/journal.h"
#include "bridge/journal/postgres/connection.h"
#include "rules/secrets.h"
#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/each_backend.h"
#include "tests/fakes/postgres.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::bridge;
using callbridge::rules::SecretSet;
using callbridge::testing::Backend;
using callbridge::testing::Bridge;
using callbridge::testing::on_each_backend;
using callbridge::testing::PostgresServer;
using callbridge::testing::TempDir;
using nlohmann::json;

namespace {

const std::string kSecret = "crm-secret-b81d0e55";

ActionRecord dead_attempt(std::int64_t seq, std::string response) {
  ActionRecord a;
  a.event_seq = seq;
  a.rule = "crm";
  a.attempt = 1;
  a.state = ActionState::dead;
  a.started_at_ms = 1000;
  a.finished_at_ms = 2000;
  a.status = 503;
  a.response = std::move(response);
  return a;
}

}  // namespace

TEST_CASE("a response body is kept redacted, capped at 4 KiB and marked when cut",
          "[journal][response]") {
  SecretSet secrets;
  secrets.add(kSecret);
  CHECK(response_excerpt("", secrets).empty());
  CHECK(response_excerpt(R"({"key":")" + kSecret + R"("})", secrets) == R"({"key":"[secret]"})");
  std::string exact(kResponseBodyCap, 'x');
  CHECK(response_excerpt(exact, secrets) == exact);

  std::string big = std::string(kResponseBodyCap - 1, 'a') + "あいう" + kSecret;
  std::string shown = response_excerpt(big, secrets);
  // Cut before the character that does not fit whole, then marked with the sizes.
  std::string redacted_size = std::to_string(kResponseBodyCap - 1 + 9 + 8);
  CHECK(shown == std::string(kResponseBodyCap - 1, 'a') +
                     "\n[cut: " + std::to_string(kResponseBodyCap - 1) + " of " + redacted_size +
                     " bytes shown]");
  // A secret across the cut is redacted before cutting: no prefix of it shows.
  std::string across = std::string(kResponseBodyCap - 4, 'b') + kSecret;
  std::string cut = response_excerpt(across, secrets);
  CHECK(cut.find(kSecret.substr(0, 4)) == std::string::npos);
  CHECK(cut.find("[cut: ") != std::string::npos);
}

TEST_CASE("every backend: an attempt's response is stored and read back", "[journal][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    std::string error;
    auto ev = journal->append_event("R-1", "inbound", R"({"event":"inbound"})", error);
    REQUIRE(ev);
    std::string body = "{\"error\":\"<b>down</b>\"}\n日本語";
    REQUIRE(journal->record_action(dead_attempt(ev->seq, body), error));
    ActionRecord ok = dead_attempt(ev->seq, "");
    ok.rule = "note";
    ok.state = ActionState::succeeded;
    ok.status = 204;
    REQUIRE(journal->record_action(ok, error));

    auto check = [&](Journal& j) {
      auto actions = j.actions_of(ev->seq);
      REQUIRE(actions.size() == 2);
      CHECK(actions[0].status == 503);
      CHECK(actions[0].response == body);
      CHECK(actions[1].response.empty());
      auto failures = j.failures("", 0, 0, 10);
      REQUIRE(failures.size() == 1);
      CHECK(failures[0].action.response == body);
    };
    check(*journal);
    bool found = false;
    json history = json::parse(call_history(*journal, "R-1", found, SecretSet{}));
    REQUIRE(found);
    CHECK(history["events"][0]["actions"][0]["status"] == 503);
    CHECK(history["events"][0]["actions"][0]["response"] == body);
    CHECK(history["events"][0]["actions"][1]["response"] == "");

    journal.reset();
    auto reopened = backend.open();
    check(*reopened);

    // Written under a call's lease (a cluster node's records: PostgreSQL) the response is kept.
    if (std::string(backend.name()) != "postgres") return;
    auto epoch = reopened->acquire_lease("call:R-1", "node-1", std::chrono::seconds(10));
    REQUIRE(epoch);
    ActionRecord fenced = dead_attempt(ev->seq, "fenced body");
    fenced.rule = "fenced";
    REQUIRE(reopened->record_action_fenced(fenced, Fence{"call:R-1", *epoch}, error));
    auto actions = reopened->actions_of(ev->seq);
    REQUIRE(actions.size() == 3);
    CHECK(actions[2].rule == "fenced");
    CHECK(actions[2].response == "fenced body");
  });
}

TEST_CASE("sqlite: a journal from before the response column gains it", "[journal][response]") {
  TempDir dir;
  std::string path = dir.path() + "/old.db";
  std::string error;
  std::int64_t seq = 0;
  {
    auto journal = Journal::open({path, false, 16}, error);
    REQUIRE(journal);
    auto ev = journal->append_event("O-1", "inbound", "{}", error);
    REQUIRE(ev);
    seq = ev->seq;
  }
  // Back to version 2: the actions table as it was, with an attempt in it.
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    char* message = nullptr;
    std::string sql =
        "ALTER TABLE actions DROP COLUMN response; PRAGMA user_version=2; "
        "INSERT INTO actions (event_seq, rule, attempt, state, status) VALUES (" +
        std::to_string(seq) + ", 'crm', 1, 'dead', 500);";
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    INFO((message ? message : ""));
    sqlite3_free(message);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
  }
  auto journal = Journal::open({path, false, 16}, error);
  INFO(error);
  REQUIRE(journal);
  auto actions = journal->actions_of(seq);
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].status == 500);
  CHECK(actions[0].response.empty());
  ActionRecord again = dead_attempt(seq, "kept");
  again.attempt = 2;
  REQUIRE(journal->record_action(again, error));
  CHECK(journal->actions_of(seq)[1].response == "kept");
  journal.reset();
  // Opening again runs no step twice.
  auto third = Journal::open({path, false, 16}, error);
  INFO(error);
  REQUIRE(third);
  CHECK(third->actions_of(seq).size() == 2);
}

TEST_CASE("postgres: a journal from before the response column gains it", "[postgres][journal]") {
  std::string skipped;
  PostgresServer* pg = PostgresServer::shared(skipped);
  if (!pg) {
    WARN(skipped);
    return;
  }
  std::string error;
  std::string url = pg->create_database(error);
  REQUIRE(!url.empty());
  JournalOptions options("", false, 16);
  options.backend = JournalBackend::postgres;
  options.postgres = url;
  std::int64_t seq = 0;
  {
    auto journal = Journal::open(options, error);
    REQUIRE(journal);
    auto ev = journal->append_event("O-1", "inbound", "{}", error);
    REQUIRE(ev);
    seq = ev->seq;
  }
  {
    callbridge::bridge::pg::Connection db;
    REQUIRE(db.open(url, error));
    INFO(error);
    REQUIRE(db.exec("ALTER TABLE actions DROP COLUMN response", error));
    REQUIRE(db.exec("UPDATE callbridge_schema SET version = 2", error));
    REQUIRE(db.exec(("INSERT INTO actions (event_seq, rule, attempt, state, status) VALUES (" +
                     std::to_string(seq) + ", 'crm', 1, 'dead', 500)")
                        .c_str(),
                    error));
  }
  auto journal = Journal::open(options, error);
  INFO(error);
  REQUIRE(journal);
  auto actions = journal->actions_of(seq);
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].response.empty());
  ActionRecord again = dead_attempt(seq, "kept");
  again.attempt = 2;
  REQUIRE(journal->record_action(again, error));
  CHECK(journal->actions_of(seq)[1].response == "kept");
}

namespace {

// Answers 503 with a long body that echoes the API key it was sent.
class EchoingCrm {
 public:
  EchoingCrm() {
    server_.Post("/crm", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 503;
      res.set_content("{\"seen\":\"" + req.get_header_value("X-Api-Key") + "\",\"pad\":\"" +
                          std::string(6000, 'p') + "\"}",
                      "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~EchoingCrm() {
    server_.stop();
    thread_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace

TEST_CASE("the call's history shows each attempt's response, redacted and capped",
          "[server][response]") {
  EchoingCrm crm;
  Bridge bridge;
  bridge.write_config(R"y(
rules:
  - name: notify
    event: inbound
    request:
      method: POST
      url: )y" + crm.base_url() +
                      R"y(/crm
      headers:
        X-Api-Key: ${CRM_KEY}
      body: '{"call": "{ID}"}'
    retry: { attempts: 2, backoff_ms: 10, max_backoff_ms: 20, on: [5xx] }
)y");
  REQUIRE(bridge.start({{"CRM_KEY", kSecret}}));
  auto r = bridge.post_event({{"event", "inbound"}, {"call_id", "R-9"}});
  REQUIRE(r);
  REQUIRE(r->status == 202);
  json call = bridge.wait_done("R-9", 1);
  INFO(call.dump());
  REQUIRE(call.is_object());
  const json& actions = call["events"][0]["actions"];
  REQUIRE(actions.size() == 2);
  for (const json& a : actions) {
    CHECK(a["status"] == 503);
    std::string body = a["response"];
    CHECK(body.rfind("{\"seen\":\"[secret]\",\"pad\":\"ppp", 0) == 0);
    CHECK(body.find(kSecret) == std::string::npos);
    CHECK(body.find("\n[cut: 4096 of ") != std::string::npos);
  }
  CHECK(bridge.process->log().find(kSecret) == std::string::npos);
}
