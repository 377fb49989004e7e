// The console's journal queries (search_calls, failures, action_counts, events_per_minute,
// action_latencies) through the interface: one scenario of a dozen calls, its expected answers
// on SQLite, and the same answers from PostgreSQL (skipped like the other [postgres] tests when
// its binaries are absent or CALLBRIDGE_SKIP_POSTGRES=1 is set).
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "bridge/console_phone.h"
#include "bridge/journal/journal.h"
#include "tests/fakes/each_backend.h"

using namespace callbridge::bridge;
using callbridge::testing::Backend;
using nlohmann::json;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the scenario wrote: each call's events, the marker between its two halves, and the
// latencies of the finished attempts.
struct Written {
  std::map<std::string, std::vector<StoredEvent>> calls;
  std::int64_t middle_ms = 0;  // after c06's first event, before c07's
  std::vector<std::int64_t> latencies;
  int actions = 0;
};

// Twelve calls c01..c12, numbers written different ways, outcomes:
// c01 ok (2 events), c02 dead, c03 failed (2 events), c04 unknown, c05 running, c06 ok (a skipped
// rule), | c07 ok (anonymous), c08 unknown (no number), c09 failed, c10 dead, c11 ok (2 events),
// c12 ok. Rules "crm" and "notify".
Written write_scenario(Journal& journal) {
  Written w;
  std::string error;
  auto append = [&](const std::string& call, const std::string& event, const json& body) {
    auto stored = journal.append_event(call, event, body.dump(), error);
    INFO(error);
    REQUIRE(stored);
    w.calls[call].push_back(*stored);
    return stored->seq;
  };
  auto act = [&](std::int64_t seq, const std::string& rule, int n, ActionState state) {
    ActionRecord a;
    a.event_seq = seq;
    a.rule = rule;
    a.attempt = n;
    a.state = state;
    a.started_at_ms = 1000 + w.actions;
    a.finished_at_ms = state == ActionState::started ? 0 : 2000 + w.actions;
    a.gate = "always";
    a.request = R"({"method":"POST"})";
    a.status = state == ActionState::succeeded ? 201 : state == ActionState::http_error ? 503 : 0;
    a.latency_us = 7000 - 100 * w.actions;  // distinct, not in record order
    a.extracted = "{}";
    a.error = state == ActionState::succeeded ? "" : "error " + std::to_string(w.actions);
    ++w.actions;
    if (state != ActionState::started && state != ActionState::skipped)
      w.latencies.push_back(a.latency_us);
    INFO(error);
    REQUIRE(journal.record_action(a, error));
  };
  auto finish = [&](std::int64_t seq, const std::string& call, EventState state) {
    INFO(error);
    REQUIRE(journal.finish_event(seq, state, call, "{}", error));
  };
  auto ringing = [&](const std::string& call, const json& tel) {
    // Each call in its own milliseconds, for the date ranges.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    json body = {{"event", "ringing"}, {"call_id", call}};
    if (!tel.is_null()) body["tel"] = tel;
    return append(call, "ringing", body);
  };

  std::int64_t s = ringing("c01", "03-1234-5678");
  act(s, "crm", 1, ActionState::succeeded);
  finish(s, "c01", EventState::done);
  s = ringing("c02", "+81 3 1234 5678");
  act(s, "crm", 1, ActionState::failed);
  act(s, "crm", 2, ActionState::dead);
  finish(s, "c02", EventState::dead);
  s = ringing("c03", "(03)1234-5678");
  act(s, "crm", 1, ActionState::http_error);
  finish(s, "c03", EventState::done);
  s = ringing("c04", "０３－１２３４－５６７８");
  act(s, "crm", 1, ActionState::unknown);
  finish(s, "c04", EventState::done);
  s = ringing("c05", "090-1111-2222");
  act(s, "notify", 1, ActionState::succeeded);
  act(s, "crm", 1, ActionState::started);  // still pending: running
  s = ringing("c06", "+81-90-1111-2222");
  act(s, "crm", 1, ActionState::skipped);
  finish(s, "c06", EventState::done);

  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  w.middle_ms = now_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));

  s = ringing("c07", "anonymous");
  act(s, "crm", 1, ActionState::succeeded);
  finish(s, "c07", EventState::done);
  s = ringing("c08", nullptr);
  act(s, "notify", 1, ActionState::unknown);
  finish(s, "c08", EventState::done);
  s = ringing("c09", "0312345679");
  act(s, "crm", 1, ActionState::failed);
  finish(s, "c09", EventState::done);
  s = ringing("c10", "06.6666.7777");
  act(s, "notify", 1, ActionState::dead);
  finish(s, "c10", EventState::dead);
  s = ringing("c11", "０９０（１１１１）２２２２");
  act(s, "crm", 1, ActionState::succeeded);
  finish(s, "c11", EventState::done);
  s = ringing("c12", "+81 (6) 6666-7777");
  act(s, "crm", 1, ActionState::succeeded);
  finish(s, "c12", EventState::done);

  // Later events of earlier calls: a call's row stays its first event.
  s = append("c01", "hangup", {{"event", "hangup"}, {"tel", "0312345678"}});
  act(s, "notify", 1, ActionState::succeeded);
  finish(s, "c01", EventState::done);
  s = append("c03", "hangup", {{"event", "hangup"}});
  finish(s, "c03", EventState::done);
  s = append("c11", "answered", {{"event", "answered"}});
  finish(s, "c11", EventState::done);
  std::sort(w.latencies.begin(), w.latencies.end());
  return w;
}

// A search's rows as "call_id tel event events outcome", checked against what was written.
std::vector<std::string> rows_of(const std::vector<Journal::CallRow>& rows, const Written& w) {
  std::vector<std::string> out;
  for (const auto& r : rows) {
    const auto& events = w.calls.at(r.call_id);
    CHECK(r.seq == events.front().seq);
    CHECK(r.first_at_ms == events.front().received_at_ms);
    CHECK(r.last_at_ms == events.back().received_at_ms);
    out.push_back(r.call_id + " " + r.tel + " " + r.event + " " + std::to_string(r.events) + " " +
                  r.outcome);
  }
  return out;
}

std::vector<std::string> ids_of(const std::vector<Journal::CallRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.call_id);
  return out;
}

Journal::CallQuery query(int limit = 50) {
  Journal::CallQuery q;
  q.limit = static_cast<std::size_t>(limit);
  return q;
}

std::string key(std::string_view number) {
  return console_phone_key(number).value_or("?");
}

// Every query of the scenario, as text: the expectations below, and what both backends must
// agree on.
std::map<std::string, std::vector<std::string>> ask(Journal& journal, const Written& w) {
  std::map<std::string, std::vector<std::string>> out;
  auto search = [&](const std::string& name, const Journal::CallQuery& q) {
    auto rows = journal.search_calls(q);
    out[name] = ids_of(rows);
    return rows;
  };

  out["all"] = rows_of(search("all ids", query()), w);

  // Two pages of five, then the rest.
  auto page1 = search("page 1", query(5));
  REQUIRE(page1.size() == 5);
  auto q = query(5);
  q.before_seq = page1.back().seq;
  auto page2 = search("page 2", q);
  REQUIRE_FALSE(page2.empty());
  q.before_seq = page2.back().seq;
  search("page 3", q);

  // The number written any way, and paged.
  q = query();
  q.phone_key = key("03 1234 5678");
  search("phone 03", q);
  q.phone_key = key("＋８１ ９０ １１１１ ２２２２");
  search("phone 090", q);
  q.phone_key = key("(06) 6666-7777");
  search("phone 06", q);
  q.phone_key = key("0312345670");
  search("phone none", q);
  q = query(2);
  q.phone_key = key("0312345678");
  auto phone_page = search("phone page 1", q);
  REQUIRE(phone_page.size() == 2);
  q.before_seq = phone_page.back().seq;
  search("phone page 2", q);

  q = query();
  q.call_id = "c07";
  search("call c07", q);
  q.call_id = "nope";
  search("call nope", q);

  q = query();
  q.from_ms = w.middle_ms;
  search("from middle", q);
  q = query();
  q.to_ms = w.middle_ms;
  search("to middle", q);
  q.from_ms = w.calls.at("c02").front().received_at_ms;
  q.to_ms = w.calls.at("c04").front().received_at_ms + 1;
  search("c02 to c04 by time", q);

  q = query();
  q.event = "hangup";
  search("event hangup", q);
  q.event = "answered";
  search("event answered", q);

  q = query();
  q.rule = "notify";
  search("rule notify", q);
  q.rule = "crm";
  search("rule crm", q);

  for (const char* outcome : {"ok", "failed", "dead", "unknown", "running"}) {
    q = query();
    q.outcome = outcome;
    search(std::string("outcome ") + outcome, q);
  }
  q = query(1);
  q.outcome = "dead";
  auto dead1 = search("dead page 1", q);
  REQUIRE(dead1.size() == 1);
  q.before_seq = dead1.back().seq;
  auto dead2 = search("dead page 2", q);
  REQUIRE(dead2.size() == 1);
  q.before_seq = dead2.back().seq;
  search("dead page 3", q);

  q = query();
  q.phone_key = key("03-1234-5678");
  q.outcome = "failed";
  search("phone 03 failed", q);
  q.outcome = "";
  q.rule = "crm";
  q.from_ms = w.calls.at("c03").front().received_at_ms;
  search("phone 03 crm from c03", q);

  // Dead letters: by rule, by time, paged by the action's key.
  auto failures = [&](const std::string& name, const std::string& rule, std::int64_t since,
                      std::int64_t before, std::size_t limit) {
    auto rows = journal.failures(rule, since, before, limit);
    auto& text = out[name];
    for (const auto& f : rows) {
      const auto& events = w.calls.at(f.call_id);
      auto event = std::find_if(events.begin(), events.end(),
                                [&](const StoredEvent& e) { return e.seq == f.action.event_seq; });
      REQUIRE(event != events.end());
      CHECK(f.event_id == event->event_id);
      CHECK(f.event == event->event);
      CHECK(f.rowid > 0);
      text.push_back(f.call_id + " " + f.action.rule + "#" + std::to_string(f.action.attempt) +
                     " " + std::string(to_string(f.action.state)) + " " + f.action.error + " " +
                     f.action.gate + " " + std::to_string(f.action.latency_us));
    }
    return rows;
  };
  failures("failures", "", 0, 0, 100);
  failures("failures crm", "crm", 0, 0, 100);
  failures("failures notify", "notify", 0, 0, 100);
  failures("failures since middle", "", w.middle_ms, 0, 100);
  auto fpage = failures("failures page 1", "", 0, 0, 3);
  REQUIRE(fpage.size() == 3);
  CHECK(fpage[0].rowid > fpage[1].rowid);
  CHECK(fpage[1].rowid > fpage[2].rowid);
  failures("failures page 2", "", 0, fpage.back().rowid, 3);

  for (auto [name, since] :
       {std::pair<std::string, std::int64_t>{"counts", 0}, {"counts since middle", w.middle_ms}}) {
    for (const auto& [state, n] : journal.action_counts(since))
      out[name].push_back(state + " " + std::to_string(n));
  }
  CHECK(journal.action_counts(now_ms() + 60000).empty());

  // Per minute: the times are the run's own, so the shape is compared, not the minutes.
  std::int64_t total = 0;
  std::int64_t previous = 0;
  for (const auto& [minute, n] : journal.events_per_minute(0)) {
    CHECK(minute % 60 == 0);
    CHECK(minute > previous);
    CHECK(minute * 1000 <= w.calls.at("c11").back().received_at_ms);
    CHECK(minute * 1000 + 60000 > w.calls.at("c01").front().received_at_ms);
    previous = minute;
    total += n;
  }
  out["per minute total"] = {std::to_string(total)};
  std::int64_t since_middle = 0;
  for (const auto& [minute, n] : journal.events_per_minute(w.middle_ms)) since_middle += n;
  out["per minute since middle"] = {std::to_string(since_middle)};
  CHECK(journal.events_per_minute(now_ms() + 60000).empty());

  for (auto l : journal.action_latencies(0, 100)) out["latencies"].push_back(std::to_string(l));
  for (auto l : journal.action_latencies(0, 3)) out["latencies 3"].push_back(std::to_string(l));
  for (auto l : journal.action_latencies(w.middle_ms, 100))
    out["latencies since middle"].push_back(std::to_string(l));
  return out;
}

using Lines = std::vector<std::string>;

void check_expected(std::map<std::string, Lines>& got, const Written& w) {
  CHECK(got["all"] ==
        Lines{"c12 +81 (6) 6666-7777 ringing 1 ok", "c11 ０９０（１１１１）２２２２ ringing 2 ok",
              "c10 06.6666.7777 ringing 1 dead", "c09 0312345679 ringing 1 failed",
              "c08  ringing 1 unknown", "c07 anonymous ringing 1 ok",
              "c06 +81-90-1111-2222 ringing 1 ok", "c05 090-1111-2222 ringing 1 running",
              "c04 ０３－１２３４－５６７８ ringing 1 unknown",
              "c03 (03)1234-5678 ringing 2 failed", "c02 +81 3 1234 5678 ringing 1 dead",
              "c01 03-1234-5678 ringing 2 ok"});
  CHECK(got["page 1"] == Lines{"c12", "c11", "c10", "c09", "c08"});
  CHECK(got["page 2"] == Lines{"c07", "c06", "c05", "c04", "c03"});
  CHECK(got["page 3"] == Lines{"c02", "c01"});
  CHECK(got["phone 03"] == Lines{"c04", "c03", "c02", "c01"});
  CHECK(got["phone 090"] == Lines{"c11", "c06", "c05"});
  CHECK(got["phone 06"] == Lines{"c12", "c10"});
  CHECK(got["phone none"].empty());
  CHECK(got["phone page 1"] == Lines{"c04", "c03"});
  CHECK(got["phone page 2"] == Lines{"c02", "c01"});
  CHECK(got["call c07"] == Lines{"c07"});
  CHECK(got["call nope"].empty());
  CHECK(got["from middle"] == Lines{"c12", "c11", "c10", "c09", "c08", "c07"});
  CHECK(got["to middle"] == Lines{"c06", "c05", "c04", "c03", "c02", "c01"});
  CHECK(got["c02 to c04 by time"] == Lines{"c04", "c03", "c02"});
  CHECK(got["event hangup"] == Lines{"c03", "c01"});
  CHECK(got["event answered"] == Lines{"c11"});
  CHECK(got["rule notify"] == Lines{"c10", "c08", "c05", "c01"});
  CHECK(got["rule crm"] ==
        Lines{"c12", "c11", "c09", "c07", "c06", "c05", "c04", "c03", "c02", "c01"});
  CHECK(got["outcome ok"] == Lines{"c12", "c11", "c07", "c06", "c01"});
  CHECK(got["outcome failed"] == Lines{"c09", "c03"});
  CHECK(got["outcome dead"] == Lines{"c10", "c02"});
  CHECK(got["outcome unknown"] == Lines{"c08", "c04"});
  CHECK(got["outcome running"] == Lines{"c05"});
  CHECK(got["dead page 1"] == Lines{"c10"});
  CHECK(got["dead page 2"] == Lines{"c02"});
  CHECK(got["dead page 3"].empty());
  CHECK(got["phone 03 failed"] == Lines{"c03"});
  CHECK(got["phone 03 crm from c03"] == Lines{"c04", "c03"});  // c02 is older

  // Actions are numbered in record order from 0: c02's dead one is 2, c04's 4, c08's 9, c10's 11.
  auto failure = [](const char* call, const char* rule, int n, const char* state, int index) {
    return std::string(call) + " " + rule + "#" + std::to_string(n) + " " + state + " error " +
           std::to_string(index) + " always " + std::to_string(7000 - 100 * index);
  };
  Lines all = {failure("c10", "notify", 1, "dead", 11), failure("c08", "notify", 1, "unknown", 9),
               failure("c04", "crm", 1, "unknown", 4), failure("c02", "crm", 2, "dead", 2)};
  CHECK(got["failures"] == all);
  CHECK(got["failures crm"] == Lines{all[2], all[3]});
  CHECK(got["failures notify"] == Lines{all[0], all[1]});
  CHECK(got["failures since middle"] == Lines{all[0], all[1]});
  CHECK(got["failures page 1"] == Lines{all[0], all[1], all[2]});
  CHECK(got["failures page 2"] == Lines{all[3]});

  CHECK(got["counts"] == Lines{"dead 2", "failed 2", "http_error 1", "skipped 1", "started 1",
                               "succeeded 6", "unknown 2"});
  CHECK(got["counts since middle"] == Lines{"dead 1", "failed 1", "succeeded 4", "unknown 1"});
  CHECK(got["per minute total"] == Lines{"15"});
  CHECK(got["per minute since middle"] == Lines{"9"});

  Lines latencies;
  for (auto l : w.latencies) latencies.push_back(std::to_string(l));
  CHECK(got["latencies"] == latencies);
  CHECK(got["latencies 3"] == Lines(latencies.begin(), latencies.begin() + 3));
  CHECK(got["latencies since middle"].size() == 7);
}

}  // namespace

TEST_CASE("console queries on sqlite: search, dead letters, counts, latencies",
          "[console][journal]") {
  Backend backend(JournalBackend::sqlite);
  std::string skipped;
  REQUIRE(backend.prepare(skipped));
  auto journal = backend.open();
  Written w = write_scenario(*journal);
  auto got = ask(*journal, w);
  check_expected(got, w);
}

TEST_CASE("console queries on postgres give sqlite's rows", "[console][journal][postgres]") {
  Backend postgres(JournalBackend::postgres);
  std::string skipped;
  if (!postgres.prepare(skipped)) {
    WARN(skipped);
    return;
  }
  Backend sqlite(JournalBackend::sqlite);
  REQUIRE(sqlite.prepare(skipped));

  auto lite = sqlite.open();
  Written lite_written = write_scenario(*lite);
  auto lite_got = ask(*lite, lite_written);

  auto pg = postgres.open();
  Written pg_written = write_scenario(*pg);
  auto pg_got = ask(*pg, pg_written);
  {
    INFO("backend postgres");
    check_expected(pg_got, pg_written);
  }
  for (const auto& [name, lines] : lite_got) {
    INFO(name);
    CHECK(pg_got[name] == lines);
  }
  CHECK(pg_got.size() == lite_got.size());

  // Reopened, the queries read the same journal (the schema's version 2 stays).
  pg.reset();
  auto again = postgres.open();
  auto again_got = ask(*again, pg_written);
  CHECK(again_got == pg_got);
}
