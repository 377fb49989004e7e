// The fake kintone's larger surface: guest spaces, system fields, queries, bulk and cursor APIs,
// throttling, OAuth. Every case goes over real HTTP, the way connectors talk to kintone.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <ctime>

#include "rules/template.h"
#include "tests/fakes/fake_kintone.h"

using callbridge::testing::FakeKintone;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

httplib::Client client_for(const FakeKintone& k) {
  httplib::Client c("127.0.0.1", k.port());
  c.set_tcp_nodelay(true);
  return c;
}

httplib::Headers token(const std::string& t) {
  return {{"X-Cybozu-API-Token", t}};
}

std::string encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::chrono::system_clock::time_point at(int hour, int minute, int second) {
  using namespace std::chrono;
  return sys_days{year{2026} / 11 / 22} + hours{hour} + minutes{minute} + seconds{second};
}

// GET records.json with the query in the URL, as most clients send it.
json get_records(httplib::Client& c, int app, const std::string& query, const std::string& tok,
                 int* status = nullptr, const std::string& prefix = "/k/v1") {
  auto r = c.Get((prefix + "/records.json?app=" + std::to_string(app) +
                  "&totalCount=true&query=" + encode(query))
                     .c_str(),
                 token(tok));
  REQUIRE(r);
  if (status) *status = r->status;
  return json::parse(r->body);
}

std::vector<std::string> ids_of(const json& records) {
  std::vector<std::string> out;
  for (const auto& r : records["records"]) out.push_back(r["$id"]["value"]);
  return out;
}

}  // namespace

TEST_CASE("fake kintone guest spaces answer only under their own path", "[fake]") {
  FakeKintone k;
  k.add_app(9, "record_no", 3);   // in guest space 3
  k.add_app(10, "record_no", 0);  // not in a guest space, strict
  k.add_app(7);                   // the old overload: answers anywhere
  k.add_api_token(9, "t9");
  k.add_api_token(10, "t10");
  k.add_api_token(7, "t7");
  auto c = client_for(k);
  auto post = [&](const std::string& path, int app, const std::string& tok) {
    auto r = c.Post(path.c_str(), token(tok),
                    json({{"app", app}, {"record", json::object()}}).dump(), "application/json");
    REQUIRE(r);
    return std::make_pair(r->status, json::parse(r->body));
  };
  CHECK(post("/k/guest/3/v1/record.json", 9, "t9").first == 200);
  auto outside = post("/k/v1/record.json", 9, "t9");
  CHECK(outside.first == 400);
  CHECK(outside.second["code"] == "GAIA_IL23");
  auto other_space = post("/k/guest/4/v1/record.json", 9, "t9");
  CHECK(other_space.first == 403);
  CHECK(other_space.second["code"] == "CB_NO02");
  auto not_guest = post("/k/guest/3/v1/record.json", 10, "t10");
  CHECK(not_guest.first == 403);
  CHECK(not_guest.second["code"] == "CB_NO02");
  CHECK(post("/k/v1/record.json", 10, "t10").first == 200);
  CHECK(post("/k/v1/record.json", 7, "t7").first == 200);
  CHECK(post("/k/guest/3/v1/record.json", 7, "t7").first == 200);
  // Reads and cursors follow the same rule.
  int status = 0;
  get_records(c, 9, "", "t9", &status);
  CHECK(status == 400);
  auto inside = get_records(c, 9, "", "t9", &status, "/k/guest/3/v1");
  CHECK(status == 200);
  CHECK(inside["totalCount"] == "1");
  auto cursor =
      c.Post("/k/guest/3/v1/records/cursor.json", token("t9"), R"({"app":9})", "application/json");
  REQUIRE(cursor->status == 200);
  std::string id = json::parse(cursor->body)["id"];
  CHECK(c.Get(("/k/v1/records/cursor.json?id=" + id).c_str(), token("t9"))->status == 400);
  CHECK(c.Get(("/k/guest/3/v1/records/cursor.json?id=" + id).c_str(), token("t9"))->status == 200);
}

TEST_CASE("fake kintone stamps $id, $revision, 作成日時 and 更新日時 from its clock", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  auto c = client_for(k);
  k.set_time(at(10, 15, 42));
  auto created = c.Post("/k/v1/record.json", token("t7"),
                        R"({"app":7,"record":{"name":{"value":"A"}}})", "application/json");
  REQUIRE(created->status == 200);
  auto record = json::parse(c.Get("/k/v1/record.json?app=7&id=1", token("t7"))->body)["record"];
  CHECK(record["$id"] == json({{"type", "__ID__"}, {"value", "1"}}));
  CHECK(record["$revision"] == json({{"type", "__REVISION__"}, {"value", "1"}}));
  CHECK(record["作成日時"] == json({{"type", "CREATED_TIME"}, {"value", "2026-11-22T10:15:00Z"}}));
  CHECK(record["更新日時"] == json({{"type", "UPDATED_TIME"}, {"value", "2026-11-22T10:15:00Z"}}));

  k.set_time(at(11, 0, 59));
  auto updated = c.Put("/k/v1/record.json", token("t7"),
                       R"({"app":7,"id":1,"record":{"name":{"value":"B"}}})", "application/json");
  CHECK(updated->body == R"({"revision":"2"})");
  auto after = k.records(7)[0];
  CHECK(after["作成日時"]["value"] == "2026-11-22T10:15:00Z");
  CHECK(after["更新日時"]["value"] == "2026-11-22T11:00:00Z");
  CHECK(after["$revision"]["value"] == "2");
  // Selected fields come back as selected, system fields included.
  auto selected = c.Get("/k/v1/records.json?app=7&fields[0]=更新日時&fields[1]=$id", token("t7"));
  CHECK(selected->body ==
        R"({"records":[{"更新日時":{"type":"UPDATED_TIME","value":"2026-11-22T11:00:00Z"},)"
        R"("$id":{"type":"__ID__","value":"1"}}],"totalCount":null})");
  // A migrated record may carry its own times.
  k.insert_record(7, {{"name", {{"value", "old"}}},
                      {"作成日時", {{"value", "2020-01-02T03:04:00Z"}}},
                      {"更新日時", {{"value", "2021-05-06T07:08:00+09:00"}}}});
  auto old = k.records(7)[1];
  CHECK(old["作成日時"]["value"] == "2020-01-02T03:04:00Z");
  CHECK(old["更新日時"]["value"] == "2021-05-05T22:08:00Z");
  // Back to real time: stamps are now, to the minute.
  k.set_time({});
  k.insert_record(7, {});
  std::string now = k.records(7)[2]["作成日時"]["value"];
  CHECK(now.size() == 20);
  CHECK(now.substr(16) == ":00Z");
  CHECK(now.substr(0, 2) == "20");
}

TEST_CASE("fake kintone queries compare times as times and IDs as numbers", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  auto c = client_for(k);
  // Records 1..12; records 3, 5 and 11 are updated at 10:45, 11:30 and on the next day.
  k.set_time(at(10, 0, 0));
  for (int i = 1; i <= 12; ++i)
    k.insert_record(7, {{"name", {{"value", i % 2 ? "odd" : "even"}}},
                        {"n", {{"value", std::to_string(100 - i)}}}});
  auto touch = [&](int id, std::chrono::system_clock::time_point when) {
    k.set_time(when);
    auto r = c.Put("/k/v1/record.json", token("t7"),
                   json({{"app", 7}, {"id", id}, {"record", json::object()}}).dump(),
                   "application/json");
    REQUIRE(r->status == 200);
  };
  touch(3, at(10, 45, 10));
  touch(5, at(11, 30, 0));
  touch(11, at(11, 30, 0) + 24h);

  auto ids = [&](const std::string& q) { return ids_of(get_records(c, 7, q, "t7")); };
  using V = std::vector<std::string>;
  CHECK(ids(R"(更新日時 > "2026-11-22T10:30:00Z" order by $id asc)") == V{"3", "5", "11"});
  CHECK(ids(R"(更新日時 > "2026-11-22T19:30:00+09:00" order by $id asc)") == V{"3", "5", "11"});
  CHECK(ids(R"(更新日時 >= "2026-11-22T10:45:00Z" and 更新日時 < "2026-11-22T11:30:00Z")") ==
        V{"3"});
  CHECK(ids(R"(更新日時 = "2026-11-23")") == V{"11"});
  CHECK(ids(R"(更新日時 > "2026-11-22" order by $id asc)") == V{"11"});
  CHECK(ids(R"(更新日時 <= "2026-11-22T10:00:00Z" and $id <= 2)") == V{"2", "1"});
  CHECK(ids("order by 更新日時 desc, $id asc limit 4") == V{"11", "5", "3", "1"});
  CHECK(ids(R"(作成日時 < NOW() and $id = 4)") == V{"4"});
  // $id is a number: 9 < 10, where text would say otherwise.
  CHECK(ids("$id >= 9 and $id < 11 order by $id asc") == V{"9", "10"});
  CHECK(ids("$id > 10") == V{"12", "11"});  // kintone's default order: $id desc
  CHECK(ids("$id != 1 and $id <= 3") == V{"3", "2"});
  CHECK(ids(R"($id in ("2", "12") order by $id asc)") == V{"2", "12"});
  CHECK(ids(R"($id not in ("2", "12") and $id < 5)") == V{"4", "3", "1"});
  CHECK(ids(R"(name = "even" and $id > 6 or $id = 1 order by $id asc)") == V{"1", "8", "10", "12"});
  CHECK(ids(R"(n >= 95 order by n asc)") == V{"5", "4", "3", "2", "1"});
  // Ties keep ID order.
  CHECK(ids(R"(order by name asc, $id desc limit 3)") == V{"12", "10", "8"});
  CHECK(ids(R"(order by name desc limit 3 offset 1)") == V{"3", "5", "7"});
  auto counted = get_records(c, 7, R"(name = "odd" limit 2)", "t7");
  CHECK(counted["totalCount"] == "6");
  CHECK(counted["records"].size() == 2);

  int status = 0;
  auto too_many = get_records(c, 7, "limit 501", "t7", &status);
  CHECK(status == 400);
  CHECK(too_many["code"] == "GAIA_QU01");
  auto too_far = get_records(c, 7, "offset 10001", "t7", &status);
  CHECK(status == 400);
  CHECK(too_far["code"] == "GAIA_QU02");
  CHECK(get_records(c, 7, "limit 500 offset 10000", "t7", &status)["records"].empty());
  CHECK(status == 200);
  CHECK(get_records(c, 7, "$id >", "t7", &status)["code"] == "GAIA_IQ11");
}

TEST_CASE("fake kintone bulk updates, upserts and single-record reads", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  auto c = client_for(k);
  auto created = c.Post(
      "/k/v1/records.json", token("t7"),
      R"({"app":7,"records":[{"code":{"value":"A"}},{"code":{"value":"B"}},{"code":{"value":"C"}}]})",
      "application/json");
  CHECK(created->body == R"({"ids":["1","2","3"],"revisions":["1","1","1"]})");

  auto one = c.Get("/k/v1/record.json?app=7&id=2", token("t7"));
  CHECK(json::parse(one->body)["record"]["code"]["value"] == "B");
  auto missing = c.Get("/k/v1/record.json?app=7&id=99", token("t7"));
  CHECK(missing->status == 404);
  CHECK(json::parse(missing->body)["code"] == "GAIA_RE01");

  // Upsert: B exists and is updated, D does not and is created.
  auto upsert =
      c.Put("/k/v1/records.json", token("t7"),
            R"({"app":7,"upsert":true,"records":[)"
            R"({"updateKey":{"field":"code","value":"B"},"record":{"x":{"value":"1"}}},)"
            R"({"updateKey":{"field":"code","value":"D"},"record":{"x":{"value":"2"}}}]})",
            "application/json");
  CHECK(upsert->body == R"({"records":[{"id":"2","revision":"2","operation":"UPDATE"},)"
                        R"({"id":"4","revision":"1","operation":"INSERT"}]})");
  auto all = k.records(7);
  REQUIRE(all.size() == 4);
  CHECK(all[1]["x"]["value"] == "1");
  CHECK(all[3]["code"]["value"] == "D");
  CHECK(all[3]["x"]["value"] == "2");

  // Without upsert a missing key is an error, and nothing in the request is applied.
  auto partial = c.Put("/k/v1/records.json", token("t7"),
                       R"({"app":7,"records":[{"id":1,"record":{"x":{"value":"9"}}},)"
                       R"({"updateKey":{"field":"code","value":"Z"},"record":{}}]})",
                       "application/json");
  CHECK(partial->status == 404);
  CHECK(k.records(7)[0]["$revision"]["value"] == "1");
  auto stale = c.Put("/k/v1/records.json", token("t7"),
                     R"({"app":7,"records":[{"id":1,"record":{"x":{"value":"9"}}},)"
                     R"({"id":2,"revision":1,"record":{}}]})",
                     "application/json");
  CHECK(stale->status == 409);
  CHECK(json::parse(stale->body)["code"] == "GAIA_CO02");
  CHECK_FALSE(k.records(7)[0].contains("x"));
  auto plain =
      c.Put("/k/v1/records.json", token("t7"),
            R"({"app":7,"records":[{"id":1,"revision":"1","record":{"x":{"value":"9"}}}]})",
            "application/json");
  CHECK(plain->body == R"({"records":[{"id":"1","revision":"2"}]})");

  // Single-record update by key, with and without the right revision.
  auto by_key =
      c.Put("/k/v1/record.json", token("t7"),
            R"({"app":7,"updateKey":{"field":"code","value":"D"},"revision":1,"record":{}})",
            "application/json");
  CHECK(by_key->body == R"({"revision":"2"})");
  auto conflict =
      c.Put("/k/v1/record.json", token("t7"),
            R"({"app":7,"updateKey":{"field":"code","value":"D"},"revision":1,"record":{}})",
            "application/json");
  CHECK(conflict->status == 409);

  // kintone's limit of 100 records per bulk call.
  json many = {{"app", 7}, {"records", json::array()}};
  for (int i = 0; i < 101; ++i) many["records"].push_back({{"code", {{"value", "M"}}}});
  auto too_many_created =
      c.Post("/k/v1/records.json", token("t7"), many.dump(), "application/json");
  CHECK(too_many_created->status == 400);
  CHECK(json::parse(too_many_created->body)["code"] == "CB_VA01");
  for (auto& r : many["records"]) r = {{"id", 1}, {"record", json::object()}};
  CHECK(c.Put("/k/v1/records.json", token("t7"), many.dump(), "application/json")->status == 400);
  many["records"].erase(many["records"].begin());
  CHECK(c.Put("/k/v1/records.json", token("t7"), many.dump(), "application/json")->status == 200);
  CHECK(k.records(7)[0]["$revision"]["value"] == "102");
}

TEST_CASE("fake kintone cursors read an app to the end", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  std::vector<json> fixture;
  for (int i = 1; i <= 1234; ++i)
    fixture.push_back({{"group", {{"value", i % 3 == 0 ? "a" : "b"}}},
                       {"n", {{"value", std::to_string(i % 100)}}}});
  k.insert_records(7, fixture);
  CHECK(k.record_count(7) == 1234);
  auto c = client_for(k);
  auto create = [&](const std::string& body) {
    auto r = c.Post("/k/v1/records/cursor.json", token("t7"), body, "application/json");
    REQUIRE(r);
    return std::make_pair(r->status, json::parse(r->body));
  };
  auto [status, cursor] = create(
      R"({"app":7,"size":500,"fields":["$id","n"],"query":"group = \"b\" order by n desc, $id asc"})");
  REQUIRE(status == 200);
  CHECK(cursor["totalCount"] == "823");
  CHECK(k.open_cursors() == 1);
  std::string id = cursor["id"];
  std::vector<json> seen;
  std::vector<std::size_t> pages;
  bool next = true;
  while (next) {
    auto r = c.Get(("/k/v1/records/cursor.json?id=" + id).c_str(), token("t7"));
    REQUIRE(r->status == 200);
    auto page = json::parse(r->body);
    pages.push_back(page["records"].size());
    for (const auto& rec : page["records"]) seen.push_back(rec);
    next = page["next"];
  }
  CHECK(pages == std::vector<std::size_t>{500, 323});
  REQUIRE(seen.size() == 823);
  CHECK(seen[0].size() == 2);
  CHECK(seen[0]["n"]["value"] == "99");
  CHECK(seen[0]["$id"]["value"] == "199");  // 99 and 199 hold n=99 in group b; ID breaks the tie
  CHECK(seen[1]["$id"]["value"] == "299");
  CHECK(seen.back()["n"]["value"] == "0");
  CHECK(seen.back()["$id"]["value"] == "1100");
  // Read to the end, the cursor is gone.
  CHECK(k.open_cursors() == 0);
  auto gone = c.Get(("/k/v1/records/cursor.json?id=" + id).c_str(), token("t7"));
  CHECK(gone->status == 404);
  CHECK(json::parse(gone->body)["code"] == "GAIA_CN01");

  // Ten open cursors per domain; deleting one makes room.
  std::vector<std::string> open;
  for (int i = 0; i < 10; ++i) {
    auto [s, body] = create(R"({"app":7})");
    REQUIRE(s == 200);
    open.push_back(body["id"]);
  }
  auto [full, refused] = create(R"({"app":7})");
  CHECK(full == 429);
  CHECK(refused["code"] == "GAIA_TM12");
  auto deleted = c.Delete("/k/v1/records/cursor.json", token("t7"), json({{"id", open[0]}}).dump(),
                          "application/json");
  CHECK(deleted->status == 200);
  CHECK(deleted->body == "{}");
  CHECK(c.Delete("/k/v1/records/cursor.json", token("t7"), json({{"id", open[0]}}).dump(),
                 "application/json")
            ->status == 404);
  CHECK(create(R"({"app":7})").first == 200);
  CHECK(k.open_cursors() == 10);
  // The default size is 100; kintone's limits on size and on the query.
  auto small = c.Get(("/k/v1/records/cursor.json?id=" + open[1]).c_str(), token("t7"));
  CHECK(json::parse(small->body)["records"].size() == 100);
  CHECK(json::parse(small->body)["next"] == true);
  CHECK(create(R"({"app":7,"size":501})").first == 400);
  CHECK(create(R"({"app":7,"query":"limit 10"})").first == 400);
  CHECK(c.Get("/k/v1/records/cursor.json?id=nope", token("t7"))->status == 404);
  CHECK(c.Get(("/k/v1/records/cursor.json?id=" + open[1]).c_str(), token("wrong"))->status == 401);
}

TEST_CASE("fake kintone pages 100,000 records quickly", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  // Processor time of the whole process (fake and client): a loaded machine does not inflate it.
  auto cpu_ms = [] { return std::clock() * 1000.0 / CLOCKS_PER_SEC; };
  std::vector<json> fixture;
  fixture.reserve(100000);
  for (int i = 0; i < 100000; ++i)
    fixture.push_back({{"tel", {{"value", "03" + std::to_string(10000000 + i)}}}});
  double started = cpu_ms();
  k.insert_records(7, fixture);
  double inserted = cpu_ms();
  CHECK(k.record_count(7) == 100000);
  auto c = client_for(k);

  // The ID seek method kintone recommends: $id > last order by $id asc limit 500.
  std::string last = "0";
  std::size_t count = 0, pages = 0;
  bool ordered = true;
  for (;;) {
    auto r = c.Get(("/k/v1/records.json?app=7&fields[0]=$id&query=" +
                    encode("$id > " + last + " order by $id asc limit 500"))
                       .c_str(),
                   token("t7"));
    REQUIRE(r->status == 200);
    auto page = json::parse(r->body);
    if (page["records"].empty()) break;
    ++pages;
    for (const auto& record : page["records"]) {
      std::string id = record["$id"]["value"];
      ordered = ordered && std::stoll(id) == std::stoll(last) + 1;
      last = id;
      ++count;
    }
  }
  CHECK(count == 100000);
  CHECK(pages == 200);
  CHECK(ordered);
  double sought = cpu_ms();

  // The cursor API, ordered by a text field.
  auto cursor = c.Post("/k/v1/records/cursor.json", token("t7"),
                       R"({"app":7,"size":500,"fields":["tel"],"query":"order by tel desc"})",
                       "application/json");
  REQUIRE(cursor->status == 200);
  CHECK(json::parse(cursor->body)["totalCount"] == "100000");
  std::string id = json::parse(cursor->body)["id"];
  std::size_t tels = 0;
  std::string previous = "99";
  bool descending = true;
  for (bool next = true; next;) {
    auto page =
        json::parse(c.Get(("/k/v1/records/cursor.json?id=" + id).c_str(), token("t7"))->body);
    for (const auto& r : page["records"]) {
      std::string tel = r["tel"]["value"];
      descending = descending && tel < previous;
      previous = tel;
      ++tels;
    }
    next = page["next"];
  }
  CHECK(tels == 100000);
  CHECK(descending);
  double done = cpu_ms();
  WARN("processor time: insert_records " << inserted - started << " ms, $id seek "
                                         << sought - inserted << " ms, cursor " << done - sought
                                         << " ms");
  // Generous for a sanitizer build; re-sorting per page, as before, takes minutes.
  CHECK(done - inserted < 60000);
}

TEST_CASE("fake kintone comments keep their mentions", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  std::string id = k.insert_record(7, {});
  auto c = client_for(k);
  auto posted = c.Post(
      "/k/v1/record/comment.json", token("t7"),
      R"({"app":7,"record":)" + id +
          R"(,"comment":{"text":"折り返しお願いします","mentions":[{"code":"sato","type":"USER"},{"code":"sales","type":"GROUP"}]}})",
      "application/json");
  CHECK(posted->body == R"({"id":"1"})");
  auto stored = k.comments(7, id);
  REQUIRE(stored.size() == 1);
  CHECK(stored[0]["text"] == "折り返しお願いします");
  CHECK(stored[0]["mentions"] ==
        json::parse(R"([{"code":"sato","type":"USER"},{"code":"sales","type":"GROUP"}])"));
  auto listed = json::parse(
      c.Get(("/k/v1/record/comments.json?app=7&record=" + id).c_str(), token("t7"))->body);
  CHECK(listed["comments"][0]["mentions"][1]["code"] == "sales");
  auto bad = c.Post(
      "/k/v1/record/comment.json", token("t7"),
      R"({"app":7,"record":1,"comment":{"text":"x","mentions":[{"code":"sato","type":"user"}]}})",
      "application/json");
  CHECK(bad->status == 400);
  CHECK(json::parse(bad->body)["code"] == "CB_VA01");
  CHECK(k.comments(7, id).size() == 1);
}

TEST_CASE("fake kintone throttles with headers and counts API calls per app", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_app(8);
  k.add_api_token(7, "t7");
  k.add_api_token(8, "t8");
  auto c = client_for(k);
  std::string body = R"({"app":7})";
  k.fail_next(2, 429, R"({"code":"GAIA_TO01","id":"x","message":"too many"})",
              {{"Retry-After", "2"}});
  for (int i = 0; i < 2; ++i) {
    auto r = c.Post("/k/v1/record.json", token("t7"), body, "application/json");
    CHECK(r->status == 429);
    CHECK(r->get_header_value("Retry-After") == "2");
  }
  auto ok = c.Post("/k/v1/record.json", token("t7"), body, "application/json");
  CHECK(ok->status == 200);
  CHECK_FALSE(ok->has_header("Retry-After"));
  k.fail_next(1, 503, R"({"code":"GAIA_TO04","id":"x","message":"busy"})");
  auto busy = c.Post("/k/v1/record.json", token("t7"), body, "application/json");
  CHECK(busy->status == 503);
  CHECK_FALSE(busy->has_header("Retry-After"));

  CHECK(c.Get("/k/v1/records.json?app=8", token("t8"))->status == 200);
  CHECK(c.Get("/k/v1/records.json?app=8", token("t7"))->status == 403);  // refused, still counted
  auto cursor =
      c.Post("/k/v1/records/cursor.json", token("t8"), R"({"app":8})", "application/json");
  std::string id = json::parse(cursor->body)["id"];
  c.Get(("/k/v1/records/cursor.json?id=" + id).c_str(), token("t8"));
  CHECK(k.api_requests(7) == 4);
  CHECK(k.api_requests(8) == 4);
  CHECK(k.api_requests(9) == 0);
}

TEST_CASE("fake kintone OAuth authorization code flow", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  const std::string redirect = "https://bridge.example.jp/oauth/callback";
  k.add_oauth_client("client-1", "s3cret", redirect);
  k.set_time(at(9, 0, 0));
  auto c = client_for(k);
  auto authorize = [&](const std::string& scope) {
    auto r = c.Get(("/oauth2/authorization?client_id=client-1&redirect_uri=" + encode(redirect) +
                    "&state=xyz-1&response_type=code&scope=" + encode(scope))
                       .c_str());
    REQUIRE(r);
    REQUIRE(r->status == 302);
    std::string location = r->get_header_value("Location");
    REQUIRE(location.rfind(redirect + "?code=", 0) == 0);
    CHECK(location.substr(location.find("&state=")) == "&state=xyz-1");
    auto start = redirect.size() + 6;
    return location.substr(start, location.find('&') - start);
  };
  auto basic = [](const std::string& id, const std::string& secret) {
    return httplib::Headers{
        {"Authorization", "Basic " + callbridge::rules::base64_encode(id + ":" + secret)}};
  };
  auto exchange = [&](const httplib::Headers& h, const std::string& form) {
    auto r = c.Post("/oauth2/token", h, form, "application/x-www-form-urlencoded");
    REQUIRE(r);
    return std::make_pair(r->status, json::parse(r->body));
  };
  std::string code = authorize("k:app_record:read k:app_record:write");
  std::string grant =
      "grant_type=authorization_code&code=" + code + "&redirect_uri=" + encode(redirect);
  auto [status, tokens] = exchange(basic("client-1", "s3cret"), grant);
  REQUIRE(status == 200);
  CHECK(tokens["token_type"] == "Bearer");
  CHECK(tokens["expires_in"] == 3600);
  CHECK(tokens["scope"] == "k:app_record:read k:app_record:write");
  std::vector<std::string> keys;
  for (const auto& [key, value] : tokens.items()) keys.push_back(key);
  CHECK(keys.size() == 5);
  std::string access = tokens["access_token"], refresh = tokens["refresh_token"];
  // Codes are single use.
  auto [reused, reuse_error] = exchange(basic("client-1", "s3cret"), grant);
  CHECK(reused == 400);
  CHECK(reuse_error["error"] == "invalid_grant");

  auto bearer = [](const std::string& t) {
    return httplib::Headers{{"Authorization", "Bearer " + t}};
  };
  auto api = [&](const std::string& t) {
    return c.Post("/k/v1/record.json", bearer(t), R"({"app":7})", "application/json");
  };
  CHECK(api(access)->status == 200);
  CHECK(c.Get("/k/v1/records.json?app=7", bearer(access))->status == 200);

  // Expired by the clock, then refreshed; the refresh keeps the refresh token.
  k.set_time(at(10, 0, 0));
  auto expired = api(access);
  CHECK(expired->status == 401);
  CHECK(json::parse(expired->body)["code"] == "CB_AU01");
  CHECK(expired->get_header_value("WWW-Authenticate") == R"(Bearer error="invalid_token")");
  k.set_access_token_lifetime(120s);
  auto [refreshed, renewed] = exchange({}, "grant_type=refresh_token&refresh_token=" + refresh +
                                               "&client_id=client-1&client_secret=s3cret");
  REQUIRE(refreshed == 200);
  CHECK(renewed["expires_in"] == 120);
  CHECK_FALSE(renewed.contains("refresh_token"));
  std::string second = renewed["access_token"];
  CHECK(second != access);
  CHECK(api(second)->status == 200);
  k.expire_access_tokens();
  CHECK(api(second)->status == 401);
  auto [again, third] =
      exchange(basic("client-1", "s3cret"), "grant_type=refresh_token&refresh_token=" + refresh);
  REQUIRE(again == 200);
  CHECK(api(third["access_token"])->status == 200);

  // Wrong secret, wrong redirect URI, read-only scope.
  CHECK(exchange(basic("client-1", "nope"), "grant_type=refresh_token&refresh_token=" + refresh)
            .first == 401);
  std::string other = authorize("k:app_record:read");
  auto [mismatch, mismatch_error] =
      exchange(basic("client-1", "s3cret"), "grant_type=authorization_code&code=" + other +
                                                "&redirect_uri=" + encode(redirect + "x"));
  CHECK(mismatch == 400);
  CHECK(mismatch_error["error"] == "invalid_grant");
  auto [read_status, read_only] =
      exchange(basic("client-1", "s3cret"),
               "grant_type=authorization_code&code=" + other + "&redirect_uri=" + encode(redirect));
  REQUIRE(read_status == 200);
  std::string reader = read_only["access_token"];
  CHECK(c.Get("/k/v1/records.json?app=7", bearer(reader))->status == 200);
  CHECK(api(reader)->status == 403);
  CHECK(k.token_requests() == 7);
  auto unknown = c.Get(("/oauth2/authorization?client_id=nobody&redirect_uri=" + encode(redirect) +
                        "&response_type=code&scope=k:app_record:read")
                           .c_str());
  CHECK(unknown->status == 400);
}
