// The kintone customer directory and its sync, and OAuth, against the fake kintone.
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <mutex>

#include "http/http_client.h"
#include "connectors/kintone/client.h"
#include "connectors/kintone/directory.h"
#include "connectors/kintone/oauth.h"
#include "rules/host.h"
#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge;
using callbridge::testing::FakeKintone;
using nlohmann::json;
using std::chrono::seconds;

using callbridge::testing::MemoryStore;

namespace {

std::string param(const std::string& url, const std::string& name) {
  auto q = url.find('?');
  if (q == std::string::npos) return "";
  std::string query = url.substr(q + 1);
  std::size_t start = 0;
  while (start <= query.size()) {
    auto amp = query.find('&', start);
    std::string part = query.substr(start, amp == std::string::npos ? amp : amp - start);
    if (part.rfind(name + "=", 0) == 0) {
      std::string v = part.substr(name.size() + 1), out;
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '%' && i + 2 < v.size()) {
          out += static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          out += v[i] == '+' ? ' ' : v[i];
        }
      }
      return out;
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  return "";
}

std::string header(const http::Outcome& o, const std::string& name) {
  for (const auto& [k, v] : o.headers)
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(a) == std::tolower(b);
        }))
      return v;
  return "";
}

kintone::DirectorySpec customer_spec() {
  kintone::DirectorySpec spec;
  spec.connection = "main";
  spec.app = 14;
  spec.phone_fields = {"電話番号", "携帯番号"};
  spec.name_field = "顧客名";
  spec.company_field = "会社名";
  return spec;
}

json customer(const std::string& phone, const std::string& name, const std::string& company,
              const std::string& mobile = "") {
  json r{{"電話番号", {{"value", phone}}},
         {"顧客名", {{"value", name}}},
         {"会社名", {{"value", company}}}};
  if (!mobile.empty()) r["携帯番号"] = {{"value", mobile}};
  return r;
}

}  // namespace

TEST_CASE("directory: several phone fields, any way of writing, withheld numbers never match",
          "[kintone-connector]") {
  kintone::Directory d;
  d.upsert({"2", "1", "山田 太郎", "山田商事", {"03-1234-5678", "090-1111-2222"}, ""});
  d.upsert({"1", "1", "佐藤 花子", "佐藤工業", {"(06)9876-5432"}, ""});
  d.upsert({"3", "1", "匿名", "", {"anonymous", "非通知", ""}, ""});
  auto found = d.lookup("+81-3-1234-5678");
  REQUIRE(found);
  CHECK(found->id == "2");
  CHECK(found->phones[0] == "03-1234-5678");  // the original, for writing back
  CHECK(d.lookup("09011112222")->name == "山田 太郎");
  CHECK(d.lookup("０６９８７６５４３２")->company == "佐藤工業");
  CHECK_FALSE(d.lookup("anonymous"));
  CHECK_FALSE(d.lookup("非通知"));
  CHECK_FALSE(d.lookup(""));
  CHECK_FALSE(d.lookup("0300000000"));

  // A second customer with the same number: the lowest record ID answers, deterministically.
  d.upsert({"10", "1", "山田 次郎", "", {"0312345678"}, ""});
  CHECK(d.lookup("0312345678")->id == "2");
  d.remove("2");
  CHECK(d.lookup("0312345678")->id == "10");
  CHECK_FALSE(d.lookup("09011112222"));

  // Unchanged revision: nothing to do. New revision: re-indexed.
  CHECK_FALSE(d.upsert({"1", "1", "佐藤 花子", "佐藤工業", {"(06)9876-5432"}, ""}));
  CHECK(d.upsert({"1", "2", "佐藤 花子", "佐藤工業", {"06-0000-0000"}, ""}));
  CHECK_FALSE(d.lookup("0698765432"));
  CHECK(d.lookup("0600000000")->id == "1");
}

TEST_CASE("directory: lookups take microseconds at 100,000 customers", "[kintone-connector]") {
  kintone::Directory d;
  for (int i = 0; i < 100000; ++i) {
    std::string n = std::to_string(10000000 + i);
    d.upsert({std::to_string(i + 1),
              "1",
              "顧客" + std::to_string(i),
              "",
              {"03-" + n.substr(0, 4) + "-" + n.substr(4)},
              ""});
  }
  REQUIRE(d.size() == 100000);
  auto start = std::chrono::steady_clock::now();
  int hits = 0;
  for (int i = 0; i < 100000; ++i)
    hits += d.lookup("+813" + std::to_string(10000000 + (i * 7919) % 100000)).has_value();
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(hits == 100000);
  double per_lookup_us = std::chrono::duration<double, std::micro>(elapsed).count() / 100000.0;
  INFO("per lookup: " << per_lookup_us << " us");
  CHECK(per_lookup_us < 50.0);  // a few microseconds; generous for sanitizer builds
}

TEST_CASE("directory sync: 25,000 customers imported, then changes reach it on the next sync",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(14);
  k.add_api_token(14, "t14");
  // Whole minutes: kintone's 更新日時 has no seconds.
  auto t0 = std::chrono::system_clock::time_point(seconds(1795000020));  // 2026-11-18
  k.set_time(t0 - seconds(86400));
  std::vector<json> fixture;
  for (int i = 0; i < 25000; ++i) {
    std::string n = std::to_string(10000000 + i);
    fixture.push_back(customer("03-" + n.substr(0, 4) + "-" + n.substr(4),
                               "顧客" + std::to_string(i), "会社" + std::to_string(i % 100)));
  }
  k.insert_records(14, fixture);

  http::HttpClient transport;
  kintone::Connection conn;
  conn.name = "main";
  conn.base_url = k.base_url();
  conn.auth.api_tokens = {"t14"};
  kintone::Client client(conn, transport);
  std::vector<std::string> log;
  kintone::DirectorySync sync(client, customer_spec(), nullptr,
                              [&](const std::string& line) { log.push_back(line); });

  auto r = sync.sync();
  REQUIRE(r.ok());
  CHECK(sync.directory().size() == 25000);
  auto p = sync.progress();
  CHECK(p.full_syncs == 1);
  CHECK(p.expected == 25000);
  CHECK(p.fetched == 25000);
  CHECK(p.rate > 0);
  CHECK_FALSE(p.watermark.empty());
  // Progress lines every 5,000 records, with a rate.
  CHECK(std::count_if(log.begin(), log.end(), [](const std::string& l) {
          return l.find("imported") != std::string::npos &&
                 l.find("records/s") != std::string::npos;
        }) == 5);
  auto found = sync.directory().lookup("+81-3-1001-2345");
  REQUIRE(found);
  CHECK(found->name == "顧客12345");
  CHECK(found->phones[0] == "03-1001-2345");

  // A change and a new customer: the next sync brings them.
  k.set_time(t0);
  REQUIRE(client.update(14, {found->id, "", ""}, {{"電話番号", {{"value", "045-111-2222"}}}}).ok());
  REQUIRE(
      client.create(14, customer("0120-123-456", "新規 顧客", "新規商事", "080-9999-0000")).ok());
  REQUIRE(sync.sync().ok());
  p = sync.progress();
  CHECK(p.incremental_syncs == 1);
  CHECK(p.changed == 2);  // the records of the last seen minute are read again, and skipped
  CHECK_FALSE(sync.directory().lookup("0310012345"));
  CHECK(sync.directory().lookup("0451112222")->name == "顧客12345");
  CHECK(sync.directory().lookup("08099990000")->company == "新規商事");
  CHECK(sync.directory().size() == 25001);

  // Another change within the same minute is not lost to the minute precision.
  k.set_time(t0 + seconds(30));
  REQUIRE(client.update(14, {"1", "", ""}, {{"顧客名", {{"value", "改名"}}}}).ok());
  std::uint64_t before = k.api_requests(14);
  REQUIRE(sync.sync().ok());
  CHECK(k.api_requests(14) - before == 1);  // one page: only the minute's three records
  CHECK(sync.progress().fetched == 3);
  CHECK(sync.progress().changed == 1);
  CHECK(sync.directory().lookup("0310000000")->name == "改名");

  // Later minutes: only what changed since the last one seen is read.
  k.set_time(t0 + seconds(600));
  REQUIRE(client.update(14, {"2", "", ""}, {{"会社名", {{"value", "移転"}}}}).ok());
  REQUIRE(sync.sync().ok());
  CHECK(sync.progress().changed == 1);
  CHECK(sync.directory().lookup("0310000001")->company == "移転");
  k.set_time(t0 + seconds(1200));
  REQUIRE(sync.sync().ok());
  CHECK(sync.progress().fetched == 1);
  CHECK(sync.progress().changed == 0);

  std::string metrics;
  sync.metrics(metrics);
  CHECK(metrics.find("callbridge_kintone_directory_customers{connection=\"main\",app=\"14\"} "
                     "25001") != std::string::npos);
  CHECK(metrics.find("callbridge_kintone_directory_syncs_total{connection=\"main\",app=\"14\","
                     "kind=\"incremental\"} 4") != std::string::npos);
}

TEST_CASE("directory sync: the cursor API imports too, and leaves no cursor open",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(14);
  k.add_api_token(14, "t14");
  std::vector<json> fixture;
  for (int i = 0; i < 1234; ++i)
    fixture.push_back(customer("06" + std::to_string(10000000 + i), "c" + std::to_string(i), ""));
  k.insert_records(14, fixture);
  http::HttpClient transport;
  kintone::Connection conn;
  conn.name = "main";
  conn.base_url = k.base_url();
  conn.auth.api_tokens = {"t14"};
  kintone::Client client(conn, transport);
  auto spec = customer_spec();
  spec.paging = kintone::Paging::cursor;
  kintone::DirectorySync sync(client, spec, nullptr);
  REQUIRE(sync.full_import().ok());
  CHECK(sync.directory().size() == 1234);
  CHECK(k.open_cursors() == 0);

  int seen = 0;
  REQUIRE(client
              .find_all(
                  14, "", {}, [&](json&&) { return ++seen < 10; }, kintone::Paging::cursor, 100)
              .ok());
  CHECK(seen == 10);
  CHECK(k.open_cursors() == 0);  // stopped early: deleted
}

TEST_CASE("directory sync: a failing kintone is reported, and the next sync recovers",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(14);
  k.add_api_token(14, "t14");
  k.insert_record(14, customer("03-1234-5678", "A", "B"));
  http::HttpClient transport;
  kintone::Connection conn;
  conn.name = "main";
  conn.base_url = k.base_url();
  conn.auth.api_tokens = {"t14"};
  conn.retry.attempts = 1;
  kintone::Client client(conn, transport);
  kintone::DirectorySync sync(client, customer_spec(), nullptr);
  k.fail_next(2, 503, "busy");
  CHECK_FALSE(sync.sync().ok());
  CHECK(sync.progress().failures == 1);
  CHECK_FALSE(sync.progress().last_error.empty());
  REQUIRE(sync.sync().ok());
  CHECK(sync.progress().full_syncs == 1);
  CHECK(sync.directory().lookup("0312345678"));
}

TEST_CASE("directory sync thread: start, sync on request, stop", "[kintone-connector]") {
  FakeKintone k;
  k.add_app(14);
  k.add_api_token(14, "t14");
  k.insert_record(14, customer("03-1234-5678", "A", "B"));
  http::HttpClient transport;
  kintone::Connection conn;
  conn.name = "main";
  conn.base_url = k.base_url();
  conn.auth.api_tokens = {"t14"};
  kintone::Client client(conn, transport);
  std::mutex m;
  std::condition_variable cv;
  int done_lines = 0;
  kintone::DirectorySync sync(client, customer_spec(), nullptr, [&](const std::string& line) {
    std::lock_guard lock(m);
    if (line.find("full import done") != std::string::npos ||
        line.find("changed since") != std::string::npos)
      ++done_lines;
    cv.notify_all();
  });
  sync.start();
  {
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, seconds(20), [&] { return done_lines >= 1; }));
  }
  CHECK(sync.directory().lookup("0312345678"));
  k.insert_record(14, customer("03-9999-9999", "C", "D"));
  sync.request_sync();
  {
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, seconds(20), [&] { return done_lines >= 2; }));
  }
  CHECK(sync.directory().lookup("0399999999"));
  sync.stop();
}

TEST_CASE("oauth: authorization code flow, refresh before expiry and after a 401",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7);
  const std::string redirect = "https://bridge.example.com/v1/kintone/oauth/main/callback";
  k.add_oauth_client("cid", "c&secret", redirect);
  auto now = std::chrono::system_clock::time_point(seconds(1795000000));
  k.set_time(now);
  http::HttpClient transport;
  MemoryStore store;
  kintone::OAuthSettings settings;
  settings.client_id = "cid";
  settings.client_secret = "c&secret";
  settings.redirect_uri = redirect;
  auto clock = [&] { return now; };
  auto tokens = std::make_shared<kintone::OAuthTokens>("main", k.base_url(), settings, transport,
                                                       &store, clock);
  CHECK_FALSE(tokens->authorized());

  std::string url = tokens->authorization_url();
  CHECK(url.rfind(k.base_url() + "/oauth2/authorization?", 0) == 0);
  CHECK(param(url, "scope") == "k:app_record:read k:app_record:write");
  CHECK(param(url, "redirect_uri") == redirect);
  auto authorized = transport.perform({"GET", url, {}, "", std::chrono::seconds(5)});
  REQUIRE(authorized.status == 302);
  std::string location = header(authorized, "Location");
  REQUIRE(location.rfind(redirect, 0) == 0);
  std::string code = param(location, "code"), state = param(location, "state");
  REQUIRE_FALSE(code.empty());

  std::string error;
  CHECK_FALSE(tokens->complete(code, "forged-state", error));
  CHECK(error.find("state") != std::string::npos);
  REQUIRE(tokens->complete(code, state, error));
  CHECK(tokens->authorized());
  CHECK_FALSE(tokens->complete(code, state, error));  // a state is used once
  CHECK(k.token_requests() == 1);
  // Persisted, and not in any error text.
  CHECK(store.get(kintone::OAuthTokens::kNamespace, "main").has_value());

  kintone::Connection conn;
  conn.name = "main";
  conn.base_url = k.base_url();
  conn.auth.oauth = tokens;
  kintone::Client client(conn, transport);
  auto created = client.create(7, {{"電話番号", {{"value", "0312345678"}}}});
  REQUIRE(created.ok());
  CHECK(k.token_requests() == 1);

  // 30 s before expiry (inside the 60 s margin): refreshed before the call, which succeeds.
  now += seconds(3570);
  k.set_time(now);
  auto near_expiry = client.get(7, created.body["id"].get<std::string>());
  REQUIRE(near_expiry.ok());
  CHECK(near_expiry.attempts == 1);
  CHECK(k.token_requests() == 2);

  // Revoked early: kintone answers 401, the client refreshes once and the call still succeeds.
  k.expire_access_tokens();
  now += seconds(5);
  k.set_time(now);
  auto after_401 = client.get(7, created.body["id"].get<std::string>());
  REQUIRE(after_401.ok());
  CHECK(after_401.attempts == 2);
  CHECK(k.token_requests() == 3);

  // A restart: tokens come back from the store, no new authorization needed.
  auto reloaded = std::make_shared<kintone::OAuthTokens>("main", k.base_url(), settings, transport,
                                                         &store, clock);
  CHECK(reloaded->authorized());
  conn.auth.oauth = reloaded;
  kintone::Client after_restart(conn, transport);
  CHECK(after_restart.get(7, created.body["id"].get<std::string>()).ok());

  // The dry-run view never shows a token.
  auto shown = client.build(kintone::get_call(7, "1"), true);
  for (const auto& [name, value] : shown.headers)
    if (name == "Authorization") CHECK(value == "Bearer [secret]");
}

TEST_CASE("oauth: without authorization, calls fail clearly and send nothing",
          "[kintone-connector]") {
  FakeKintone k;
  k.add_app(7);
  http::HttpClient transport;
  kintone::OAuthSettings settings;
  settings.client_id = "cid";
  settings.client_secret = "secret";
  settings.redirect_uri = "https://b.example/cb";
  auto tokens =
      std::make_shared<kintone::OAuthTokens>("crm", k.base_url(), settings, transport, nullptr);
  kintone::Connection conn;
  conn.name = "crm";
  conn.base_url = k.base_url();
  conn.auth.oauth = tokens;
  kintone::Client client(conn, transport);
  auto r = client.get(7, "1");
  CHECK(r.error_class() == kintone::ErrorClass::final);
  CHECK(r.error_text().find("/v1/kintone/oauth/crm/start") != std::string::npos);
  CHECK(k.api_requests(7) == 0);
}
