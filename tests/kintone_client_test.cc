// The kintone connector's client, phone keys and error handling, against the fake kintone.
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <thread>

#include "http/http_client.h"
#include "connectors/kintone/client.h"
#include "connectors/kintone/errors.h"
#include "connectors/kintone/phone.h"
#include "tests/fakes/fake_kintone.h"

using namespace callbridge;
using callbridge::testing::FakeKintone;
using nlohmann::json;

namespace {

// Counts what goes through, and how much of it at once.
class CountingTransport : public http::Transport {
 public:
  http::Outcome perform(const http::Request& r) override {
    int now = ++current_;
    int seen = max_.load();
    while (now > seen && !max_.compare_exchange_weak(seen, now)) {
    }
    {
      std::lock_guard lock(mutex_);
      sent_.push_back(r);
    }
    auto out = inner_.perform(r);
    --current_;
    return out;
  }
  int max_concurrent() const { return max_.load(); }
  std::vector<http::Request> sent() const {
    std::lock_guard lock(mutex_);
    return sent_;
  }

 private:
  http::HttpClient inner_;
  std::atomic<int> current_{0}, max_{0};
  mutable std::mutex mutex_;
  std::vector<http::Request> sent_;
};

kintone::Connection token_connection(const FakeKintone& k, std::string token = "t7") {
  kintone::Connection c;
  c.name = "main";
  c.base_url = k.base_url();
  c.auth.api_tokens = {std::move(token)};
  c.retry.backoff = std::chrono::milliseconds(100);
  return c;
}

std::string header(const http::Request& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

}  // namespace

TEST_CASE("phone keys: every way of writing a Japanese number gives one key",
          "[kintone-connector]") {
  using kintone::phone_key;
  for (const char* written :
       {"03-1234-5678", "0312345678", "+81312345678", "+81-3-1234-5678", "(03)1234-5678",
        "０３－１２３４－５６７８", "03 1234 5678", "+81 (0)3-1234-5678",
        "０３（１２３４）５６７８", "＋８１３１２３４５６７８"}) {
    INFO(written);
    CHECK(phone_key(written) == std::optional<std::string>("0312345678"));
  }
  CHECK(phone_key("090-1234-5678") == std::optional<std::string>("09012345678"));
  CHECK(phone_key("+1 (415) 555-0100") == std::optional<std::string>("+14155550100"));
  for (const char* none : {"", "anonymous", "非通知", "公衆電話", "通知不可能", "Unavailable", "-",
                           "03-1234-5678 ext 12", "1+2", "\xff\xfe"}) {
    INFO(none);
    CHECK_FALSE(phone_key(none).has_value());
  }
  auto parsed = kintone::parse_phone("03-1234-5678");
  REQUIRE(parsed);
  CHECK(parsed->original == "03-1234-5678");
  CHECK(parsed->key == "0312345678");
}

TEST_CASE("phone variants cover the hyphenations stored in kintone", "[kintone-connector]") {
  auto v = kintone::phone_variants("0312345678");
  for (const char* want : {"0312345678", "03-1234-5678", "031-234-5678", "0312-34-5678",
                           "+81312345678", "+81-3-1234-5678"}) {
    INFO(want);
    CHECK(std::find(v.begin(), v.end(), want) != v.end());
  }
  auto mobile = kintone::phone_variants("09012345678");
  CHECK(std::find(mobile.begin(), mobile.end(), "090-1234-5678") != mobile.end());
  auto free_dial = kintone::phone_variants("0120123456");
  CHECK(std::find(free_dial.begin(), free_dial.end(), "0120-123-456") != free_dial.end());
}

TEST_CASE("kintone errors are parsed and classified", "[kintone-connector]") {
  auto response = [](int status, std::string body, http::Headers headers = {}) {
    http::Outcome o;
    o.kind = http::OutcomeKind::response;
    o.status = status;
    o.body = std::move(body);
    o.headers = std::move(headers);
    return o;
  };
  auto validation = kintone::parse_error(response(
      400,
      R"({"code":"CB_VA01","id":"abc","message":"入力内容が正しくありません。","errors":{"record.電話番号.value":{"messages":["必須です。"]}}})"));
  REQUIRE(validation);
  CHECK(validation->code == "CB_VA01");
  CHECK(validation->id == "abc");
  CHECK(validation->kind == kintone::ErrorClass::final);
  REQUIRE(validation->fields.size() == 1);
  CHECK(validation->fields[0].first == "record.電話番号.value");
  CHECK(validation->summary().find("必須です。") != std::string::npos);

  auto conflict = kintone::parse_error(
      response(409, R"({"code":"GAIA_CO02","id":"x","message":"リビジョンが一致しません。"})"));
  CHECK(conflict->kind == kintone::ErrorClass::reread);

  auto throttled = kintone::parse_error(
      response(429, R"({"code":"CB_TO01","id":"y","message":"too many"})", {{"retry-after", "3"}}));
  CHECK(throttled->kind == kintone::ErrorClass::retry);
  CHECK(throttled->retry_after == std::chrono::seconds(3));
  CHECK(
      kintone::parse_error(response(520, R"({"code":"GAIA_TO04","id":"z","message":"m"})"))->kind ==
      kintone::ErrorClass::retry);
  CHECK(kintone::parse_error(response(503, "<html>busy</html>"))->kind ==
        kintone::ErrorClass::retry);
  CHECK(kintone::parse_error(response(502, ""))->kind == kintone::ErrorClass::retry);
  CHECK(kintone::parse_error(response(504, ""))->kind == kintone::ErrorClass::retry);
  CHECK(kintone::parse_error(response(401, R"({"code":"CB_WA01","id":"a","message":"m"})"))->kind ==
        kintone::ErrorClass::final);
  CHECK(
      kintone::parse_error(response(403, R"({"code":"GAIA_NO01","id":"a","message":"m"})"))->kind ==
      kintone::ErrorClass::final);
  CHECK(
      kintone::parse_error(response(404, R"({"code":"GAIA_RE01","id":"a","message":"m"})"))->kind ==
      kintone::ErrorClass::final);
  CHECK_FALSE(kintone::parse_error(response(200, "{}")));

  http::Outcome refused;
  refused.kind = http::OutcomeKind::connect_error;
  refused.error = "connection refused";
  auto transport = kintone::parse_error(refused);
  REQUIRE(transport);
  CHECK(transport->kind == kintone::ErrorClass::retry);
  CHECK(transport->status == 0);
}

TEST_CASE("kintone queries always quote values: a hostile caller ID never widens a search",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  k.insert_record(7, {{"電話番号", {{"value", "0312345678"}}}});
  k.insert_record(7, {{"電話番号", {{"value", "0698765432"}}}});
  http::HttpClient transport;
  kintone::Client client(token_connection(k), transport);

  for (std::string hostile : {"\" or 電話番号 != \"", "1\" or $id > \"0", "\\\" or 1 = 1 or \"",
                              "x\") or (電話番号 like \""}) {
    INFO(hostile);
    kintone::FindQuery q;
    q.where.push_back({"電話番号", "=", {hostile}});
    auto r = client.find(7, q);
    REQUIRE(r.ok());
    CHECK(r.body["records"].empty());
    CHECK(r.body["totalCount"] == "0");
  }
  kintone::FindQuery in;
  in.where.push_back({"電話番号", "in", {"\" or 電話番号 != \"", "0312345678"}});
  auto r = client.find(7, in);
  REQUIRE(r.ok());
  CHECK(r.body["records"].size() == 1);
  CHECK(kintone::build_query(in) ==
        R"(電話番号 in ("\" or 電話番号 != \"", "0312345678") limit 100)");
}

TEST_CASE("kintone client: create, get, find, update with revision, comment with mentions",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  CountingTransport transport;
  kintone::Client client(token_connection(k), transport);

  auto created = client.create(7, {{"電話番号", {{"value", "03-1234-5678"}}}});
  REQUIRE(created.ok());
  std::string id = created.body["id"];
  CHECK(created.body["revision"] == "1");
  CHECK(header(transport.sent().back(), "X-Cybozu-API-Token") == "t7");

  auto got = client.get(7, id);
  REQUIRE(got.ok());
  CHECK(got.body["record"]["電話番号"]["value"] == "03-1234-5678");

  auto updated = client.update(7, {id, "", ""}, {{"会社名", {{"value", "サイボウズ"}}}}, 1);
  REQUIRE(updated.ok());
  CHECK(updated.body["revision"] == "2");

  // A stale revision: kintone answers 409 GAIA_CO02; the client re-reads once and wins.
  auto stale = client.update(7, {id, "", ""}, {{"担当", {{"value", "佐藤"}}}}, 1);
  REQUIRE(stale.ok());
  CHECK(stale.body["revision"] == "3");
  CHECK(stale.attempts == 3);  // the conflict, the re-read, the update

  auto by_key = client.update(7, {"", "電話番号", "03-1234-5678"}, {{"担当", {{"value", "鈴木"}}}});
  REQUIRE(by_key.ok());
  CHECK(k.records(7)[0]["担当"]["value"] == "鈴木");

  auto missing = client.update(7, {"999", "", ""}, {{"担当", {{"value", "x"}}}});
  CHECK(missing.error_class() == kintone::ErrorClass::final);
  CHECK(missing.error->status == 404);
  CHECK(missing.error->code == "GAIA_RE01");
  CHECK(missing.attempts == 1);

  auto comment = client.add_comment(7, id, "通話がありました。", {{"sato", "USER"}});
  REQUIRE(comment.ok());
  auto comments = k.comments(7, id);
  REQUIRE(comments.size() == 1);
  CHECK(comments[0]["text"] == "通話がありました。");
  CHECK(comments[0]["mentions"][0]["code"] == "sato");
  CHECK(comments[0]["mentions"][0]["type"] == "USER");

  std::string metrics;
  client.metrics(metrics);
  CHECK(metrics.find("callbridge_kintone_requests_today{connection=\"main\",app=\"7\"} ") !=
        std::string::npos);
  CHECK(client.requests_today(7) == transport.sent().size());
}

TEST_CASE("kintone client: 429 and 503 are retried with backoff, validation errors are not",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  http::HttpClient transport;
  std::vector<std::chrono::milliseconds> waits;
  auto conn = token_connection(k);
  conn.retry.attempts = 4;
  kintone::Client client(conn, transport, [&](std::chrono::milliseconds d) { waits.push_back(d); });

  k.fail_next(2, 429,
              R"({"code":"CB_TO01","id":"1","message":"APIの同時実行数が上限を超えています。"})",
              {{"Retry-After", "1"}});
  auto created = client.create(7, {{"電話番号", {{"value", "0312345678"}}}});
  INFO(created.error_text());
  REQUIRE(created.ok());
  CHECK(created.attempts == 3);
  REQUIRE(waits.size() == 2);
  CHECK(waits[0] >= std::chrono::milliseconds(100));
  CHECK(k.records(7).size() == 1);  // nothing was applied by the throttled attempts

  waits.clear();
  k.fail_next(4, 503, "<html>Service Unavailable</html>");
  auto gave_up = client.get(7, "1");
  CHECK(gave_up.error_class() == kintone::ErrorClass::retry);
  CHECK(gave_up.attempts == 4);
  CHECK(waits.size() == 3);
  CHECK(waits[1] == 2 * waits[0]);  // exponential

  waits.clear();
  auto invalid = client.call({"POST", "record", json{{"record", json::object()}}, 7, false});
  CHECK(invalid.error_class() == kintone::ErrorClass::final);
  CHECK(invalid.error->code == "CB_VA01");
  CHECK(invalid.attempts == 1);
  CHECK(waits.empty());
}

TEST_CASE("kintone client: a create is not repeated after it may have reached kintone",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  http::HttpClient transport;
  auto conn = token_connection(k);
  conn.timeout = std::chrono::milliseconds(200);
  kintone::Client client(conn, transport, [](std::chrono::milliseconds) {});
  k.set_response_delay(std::chrono::milliseconds(600));
  auto created = client.create(7, {{"電話番号", {{"value", "0312345678"}}}});
  k.set_response_delay(std::chrono::milliseconds(0));
  CHECK(created.error_class() == kintone::ErrorClass::retry);
  CHECK(created.attempts == 1);
}

TEST_CASE("kintone client: find_all reads 25,000 records past the 10,000 offset limit",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(14);
  k.add_api_token(14, "t14");
  std::vector<json> fixture;
  for (int i = 0; i < 25000; ++i)
    fixture.push_back({{"電話番号", {{"value", "03" + std::to_string(10000000 + i)}}}});
  k.insert_records(14, fixture);
  http::HttpClient transport;
  kintone::Client client(token_connection(k, "t14"), transport);

  std::set<std::string> ids;
  auto r = client.find_all(14, "", {"電話番号"}, [&](json&& rec) {
    ids.insert(rec["$id"]["value"].get<std::string>());
    return true;
  });
  REQUIRE(r.ok());
  CHECK(r.body["count"] == 25000);
  CHECK(ids.size() == 25000);
  CHECK(client.requests_today(14) == 51);  // 50 full pages and the empty one after them

  // A filtered walk, and stopping early.
  int seen = 0;
  auto filtered =
      client.find_all(14, "電話番号 like \"0310000\"", {}, [&](json&&) { return ++seen < 5; });
  REQUIRE(filtered.ok());
  CHECK(seen == 5);
}

TEST_CASE("kintone client: upsert goes in batches of 100 and is keyed", "[kintone-connector]") {
  FakeKintone k;
  k.add_app(20);
  k.add_api_token(20, "t20");
  CountingTransport transport;
  kintone::Client client(token_connection(k, "t20"), transport);
  std::vector<kintone::UpsertItem> items;
  for (int i = 0; i < 250; ++i)
    items.push_back({"通話ID", "C" + std::to_string(i), {{"メモ", {{"value", "first"}}}}});
  auto r = client.upsert(20, items);
  REQUIRE(r.ok());
  CHECK(r.body["records"].size() == 250);
  CHECK(transport.sent().size() == 3);
  CHECK(k.records(20).size() == 250);
  for (auto& item : items) item.record = {{"メモ", {{"value", "second"}}}};
  REQUIRE(client.upsert(20, items).ok());
  auto records = k.records(20);
  CHECK(records.size() == 250);  // updated, not duplicated
  CHECK(records[0]["メモ"]["value"] == "second");
  auto body = json::parse(transport.sent()[0].body);
  CHECK(body["upsert"] == true);
  CHECK(body["records"][0]["updateKey"] == json({{"field", "通話ID"}, {"value", "C0"}}));
}

TEST_CASE("kintone client: long GETs become POST with X-HTTP-Method-Override",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  k.insert_record(7, {{"電話番号", {{"value", "0312345678"}}}});
  CountingTransport transport;
  kintone::Client client(token_connection(k), transport);

  kintone::FindQuery short_query;
  short_query.where.push_back({"電話番号", "=", {"0312345678"}});
  REQUIRE(client.find(7, short_query).ok());
  CHECK(transport.sent().back().method == "GET");

  kintone::FindQuery long_query;
  long_query.where.push_back({"電話番号", "in", {}});
  for (int i = 0; i < 300; ++i) long_query.where[0].values.push_back("03" + std::to_string(i));
  long_query.where[0].values.push_back("0312345678");
  auto r = client.find(7, long_query);
  REQUIRE(r.ok());
  CHECK(r.body["records"].size() == 1);
  auto sent = transport.sent().back();
  CHECK(sent.method == "POST");
  CHECK(header(sent, "X-HTTP-Method-Override") == "GET");
  CHECK(sent.url.find('?') == std::string::npos);
}

TEST_CASE("kintone client: auth headers, guest spaces and path prefixes", "[kintone-connector]") {
  FakeKintone k;
  k.add_app(30, "record_no", 5);
  k.add_user("bridge", "pa:ss");
  CountingTransport transport;
  kintone::Connection c;
  c.name = "guest";
  c.base_url = k.base_url() + "/";
  c.guest_space = 5;
  c.auth.login = "bridge";
  c.auth.password = "pa:ss";
  c.auth.basic_user = "proxy";
  c.auth.basic_password = "pw";
  kintone::Client client(c, transport);
  auto created = client.create(30, {{"電話番号", {{"value", "1"}}}});
  REQUIRE(created.ok());
  auto sent = transport.sent().back();
  CHECK(sent.url == k.base_url() + "/k/guest/5/v1/record.json");
  CHECK(header(sent, "X-Cybozu-Authorization") == "YnJpZGdlOnBhOnNz");  // bridge:pa:ss
  CHECK(header(sent, "Authorization") == "Basic cHJveHk6cHc=");

  auto shown = client.build(kintone::create_call(30, json::object()), true);
  CHECK(header(shown, "X-Cybozu-Authorization") == "[secret]");
  CHECK(header(shown, "Authorization") == "Basic [secret]");

  kintone::Connection wrong = c;
  wrong.auth.password = "nope";
  wrong.auth.basic_user.clear();
  kintone::Client denied(wrong, transport);
  auto r = denied.create(30, json::object());
  CHECK(r.error_class() == kintone::ErrorClass::final);
  CHECK(r.error->status == 401);
}

TEST_CASE("kintone client: concurrent requests are capped per connection", "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7);
  k.add_api_token(7, "t7");
  k.set_response_delay(std::chrono::milliseconds(30));
  CountingTransport transport;
  auto conn = token_connection(k);
  conn.max_concurrency = 2;
  kintone::Client client(conn, transport);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      kintone::FindQuery q;
      if (client.find(7, q).ok()) ++ok;
    });
  for (auto& t : threads) t.join();
  CHECK(ok == 8);
  CHECK(transport.max_concurrent() <= 2);
  CHECK(transport.max_concurrent() >= 1);
  CHECK(client.in_flight() == 0);
}
