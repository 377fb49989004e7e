// The fake kintone answers like kintone: the suite's other results are only as good as it is.
#include "tests/fakes/fake_kintone.h"

#include <httplib.h>

#include <catch2/catch.hpp>

#include "rules/template.h"

using callbridge::testing::FakeKintone;
using nlohmann::json;

namespace {

httplib::Client client_for(const FakeKintone& k) {
  httplib::Client c("127.0.0.1", k.port());
  c.set_tcp_nodelay(true);
  return c;
}

httplib::Headers token(const std::string& t) {
  return {{"X-Cybozu-API-Token", t}};
}

std::string search(FakeKintone& k, const std::string& query, const std::string& extra = "") {
  auto c = client_for(k);
  std::string body = json({{"app", 7}, {"query", query}, {"totalCount", "true"}}).dump();
  if (!extra.empty()) body = body.substr(0, body.size() - 1) + "," + extra + "}";
  httplib::Headers h = token("t7");
  h.emplace("X-HTTP-Method-Override", "GET");
  auto r = c.Post("/k/v1/records.json", h, body, "application/json");
  REQUIRE(r);
  return r->body;
}

}  // namespace

TEST_CASE("fake kintone answers compact JSON byte for byte", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  auto c = client_for(k);
  auto created =
      c.Post("/k/v1/record.json", token("t7"),
             R"({"app":7,"record":{"電話番号":{"value":"0312345678"}}})", "application/json");
  REQUIRE(created);
  CHECK(created->body == R"({"id":"1","revision":"1"})");
  auto found = c.Get(
      "/k/v1/"
      "records.json?app=7&query=%E9%9B%BB%E8%A9%B1%E7%95%AA%E5%8F%B7%20%3D%20%220312345678%22&"
      "fields[0]=record_no&totalCount=true",
      token("t7"));
  REQUIRE(found);
  CHECK(found->body ==
        R"({"records":[{"record_no":{"type":"RECORD_NUMBER","value":"1"}}],"totalCount":"1"})");
  auto no_total = c.Get("/k/v1/records.json?app=7&fields[0]=record_no", token("t7"));
  CHECK(no_total->body ==
        R"({"records":[{"record_no":{"type":"RECORD_NUMBER","value":"1"}}],"totalCount":null})");
}

TEST_CASE("fake kintone query subset", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  for (const char* tel : {"0311111111", "0322222222", "0333333333"})
    k.insert_record(7, {{"電話番号", {{"value", tel}}}});
  std::string hostile = R"(1" or 電話番号 != ")";
  k.insert_record(7, {{"電話番号", {{"value", hostile}}}});

  CHECK(json::parse(search(k, R"(電話番号 in ("0311111111", "0333333333"))"))["totalCount"] == "2");
  CHECK(json::parse(search(k, R"(電話番号 not in ("0311111111"))"))["totalCount"] == "3");
  CHECK(json::parse(search(
            k, R"(電話番号 = "0322222222" or 電話番号 = "0333333333")"))["totalCount"] == "2");
  CHECK(json::parse(search(k, R"(電話番号 like "22")"))["totalCount"] == "1");
  auto ordered = json::parse(search(k, R"(order by $id asc limit 2 offset 1)"));
  REQUIRE(ordered["records"].size() == 2);
  CHECK(ordered["records"][0]["$id"]["value"] == "2");
  CHECK(ordered["totalCount"] == "4");
  // The escaped hostile value is one literal: it finds exactly the record holding it.
  auto literal =
      json::parse(search(k, "電話番号 = " + callbridge::rules::kintone_query_literal(hostile)));
  REQUIRE(literal["totalCount"] == "1");
  CHECK(literal["records"][0]["電話番号"]["value"] == hostile);
  // Unescaped, it rewrites the query and matches every record: what escaping prevents.
  CHECK(json::parse(search(k, "電話番号 = \"" + hostile + "\""))["totalCount"] == "4");
  CHECK(json::parse(search(k, "電話番号 = "))["code"] == "GAIA_IQ11");
}

TEST_CASE("fake kintone authentication and errors", "[fake]") {
  FakeKintone k;
  k.add_app(7);
  k.add_app(8);
  k.add_api_token(7, "t7");
  k.add_api_token(8, "t8");
  k.add_user("operator", "pass");
  auto c = client_for(k);
  std::string body = R"({"app":7})";
  CHECK(c.Post("/k/v1/record.json", body, "application/json")->status == 401);
  CHECK(c.Post("/k/v1/record.json", token("nope"), body, "application/json")->status == 401);
  CHECK(c.Post("/k/v1/record.json", token("t8"), body, "application/json")->status == 403);
  CHECK(c.Post("/k/v1/record.json", token("t8,t7"), body, "application/json")->status == 200);
  httplib::Headers password = {
      {"X-Cybozu-Authorization", callbridge::rules::base64_encode("operator:pass")}};
  CHECK(c.Post("/k/v1/record.json", password, body, "application/json")->status == 200);
  httplib::Headers wrong = {
      {"X-Cybozu-Authorization", callbridge::rules::base64_encode("operator:nope")}};
  auto denied = c.Post("/k/v1/record.json", wrong, body, "application/json");
  CHECK(denied->status == 401);
  CHECK(json::parse(denied->body)["code"] == "CB_WA01");
  auto missing = c.Post("/k/v1/record/comment.json", token("t7"),
                        R"({"app":7,"record":99,"comment":{"text":"x"}})", "application/json");
  CHECK(missing->status == 404);
  CHECK(json::parse(missing->body)["code"] == "GAIA_RE01");
  CHECK(c.Post("/k/v1/record.json", token("t7"), "{oops", "application/json")->status == 400);
  // Guest space path, update by key with a revision conflict.
  CHECK(c.Post("/k/guest/3/v1/record.json", token("t7"),
               R"({"app":7,"record":{"code":{"value":"A"}}})", "application/json")
            ->status == 200);
  auto conflict =
      c.Put("/k/v1/record.json", token("t7"),
            R"({"app":7,"updateKey":{"field":"code","value":"A"},"revision":5,"record":{}})",
            "application/json");
  CHECK(conflict->status == 409);
  auto update =
      c.Put("/k/v1/record.json", token("t7"),
            R"({"app":7,"updateKey":{"field":"code","value":"A"},"record":{"name":{"value":"x"}}})",
            "application/json");
  CHECK(update->body == R"({"revision":"2"})");
  k.fail_next(1, 503, R"({"code":"GAIA_TO04","id":"x","message":"busy"})");
  CHECK(c.Post("/k/v1/record.json", token("t7"), body, "application/json")->status == 503);
  CHECK(c.Post("/k/v1/record.json", token("t7"), body, "application/json")->status == 200);
}
