// `callbridge migrate`: an SQLite journal copied into PostgreSQL through the real binary, twice.
#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "bridge/journal/journal.h"
#include "tests/fakes/postgres.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::bridge;
using namespace callbridge::testing;

TEST_CASE("migrate copies an SQLite journal into PostgreSQL, idempotently", "[postgres][migrate]") {
  std::string skipped;
  PostgresServer* pg = PostgresServer::shared(skipped);
  if (!pg) {
    WARN(skipped);
    return;
  }
  std::string error;
  std::string url = pg->create_database(error);
  REQUIRE(!url.empty());
  TempDir dir;
  std::string file = dir.path() + "/callbridge.db";
  std::int64_t last = 0;
  {
    auto sqlite = Journal::open(JournalOptions(file, false), error);
    REQUIRE(sqlite);
    for (int i = 0; i < 5; ++i) {
      auto e = sqlite->append_event(i % 2 ? "M-1" : "M-2", "step",
                                    "{\"i\":" + std::to_string(i) + "}", error);
      REQUIRE(e);
      last = e->seq;
      ActionRecord a;
      a.event_seq = e->seq;
      a.rule = "crm";
      a.state = ActionState::succeeded;
      a.status = 201;
      REQUIRE(sqlite->record_action(a, error));
      if (i < 3)
        REQUIRE(sqlite->finish_event(e->seq, EventState::done, e->call_id, "{\"V\":\"1\"}", error));
    }
    REQUIRE(sqlite->kv_put("oauth", "token", "abc", error));
  }

  // The password, if the server wanted one, would come from PGPASSWORD, not the command line.
  std::map<std::string, std::string> env{{"PGPASSWORD", "unused-here"}};
  auto first = run_process({CALLBRIDGE_BINARY, "migrate", "--from", file, "--to", url}, env);
  INFO(first.out << first.err);
  REQUIRE(first.exit_code == 0);
  CHECK(first.err.find("migrate: events 5/5 (5 new)") != std::string::npos);
  CHECK(first.err.find("migrate: actions 5/5 (5 new)") != std::string::npos);
  CHECK(first.err.find("migrate: kv 1/1 (1 new)") != std::string::npos);
  auto second = run_process({CALLBRIDGE_BINARY, "migrate", "--from", file, "--to", url}, env);
  INFO(second.out << second.err);
  REQUIRE(second.exit_code == 0);
  CHECK(second.err.find("migrate: events 5/5 (0 new)") != std::string::npos);
  CHECK(second.err.find("migrate: calls 2/2 (0 new)") != std::string::npos);

  JournalOptions options;
  options.backend = JournalBackend::postgres;
  options.postgres = url;
  auto copy = Journal::open(options, error);
  INFO(error);
  REQUIRE(copy);
  auto sqlite = Journal::open(JournalOptions(file, false), error);
  REQUIRE(sqlite);
  for (const char* call : {"M-1", "M-2"}) {
    auto a = sqlite->events_of_call(call), b = copy->events_of_call(call);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i].seq == b[i].seq);
      CHECK(a[i].body == b[i].body);
      CHECK(a[i].state == b[i].state);
      CHECK(a[i].received_at_ms == b[i].received_at_ms);
      CHECK(copy->actions_of(b[i].seq).size() == 1);
    }
    CHECK(sqlite->call_vars(call) == copy->call_vars(call));
  }
  CHECK(copy->pending_events().size() == 2);
  CHECK(copy->kv_get("oauth", "token") == std::optional<std::string>("abc"));
  auto next = copy->append_event("M-1", "step", "{}", error);
  REQUIRE(next);
  CHECK(next->seq > last);
  CHECK(copy->events_of_call("M-1").back().seq == next->seq);
}
