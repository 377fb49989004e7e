// The kintone directory and OAuth tokens shared by two nodes in one process (each its own
// client, sync and token holder; one key-value store and one lease table): one node syncs per
// interval and both answer lookups; one node refreshes a token and the other reads it.
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <thread>

#include "connectors/kintone/client.h"
#include "connectors/kintone/directory.h"
#include "connectors/kintone/oauth.h"
#include "http/http_client.h"
#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge;
using namespace std::chrono_literals;
using callbridge::testing::FakeKintone;
using callbridge::testing::MemoryStore;
using nlohmann::json;

namespace {

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

json customer(const std::string& phone, const std::string& name) {
  return {{"電話番号", {{"value", phone}}}, {"顧客名", {{"value", name}}}};
}

struct DirectoryNode {
  DirectoryNode(const FakeKintone& k, MemoryStore& kv, rules::Leases& leases,
                std::chrono::seconds interval)
      : client(connection(k), transport),
        sync(client, spec(interval), nullptr),
        shared(sync, kv, leases) {}

  static kintone::Connection connection(const FakeKintone& k) {
    kintone::Connection conn;
    conn.name = "crm";
    conn.base_url = k.base_url();
    conn.auth.api_tokens = {"t14"};
    return conn;
  }
  static kintone::DirectorySpec spec(std::chrono::seconds interval) {
    kintone::DirectorySpec s;
    s.connection = "crm";
    s.app = 14;
    s.phone_fields = {"電話番号"};
    s.name_field = "顧客名";
    s.interval = interval;
    return s;
  }
  bool finds(const std::string& tel) { return sync.directory().lookup(tel).has_value(); }

  http::HttpClient transport;
  kintone::Client client;
  kintone::DirectorySync sync;
  kintone::SharedDirectory shared;
};

}  // namespace

TEST_CASE("shared directory: one node syncs per interval, both find new customers, hand-over",
          "[singleton][kintone-connector]") {
  FakeKintone k;
  k.add_app(14);
  k.add_api_token(14, "t14");
  k.insert_record(14, customer("03-1234-5678", "山田商店"));
  MemoryStore kv;
  rules::LocalLeases a_leases(kv, "node-a", 300ms);
  auto b_leases = a_leases.as("node-b");
  DirectoryNode a(k, kv, a_leases, 2s);
  DirectoryNode b(k, kv, *b_leases, 2s);
  a.shared.start();
  REQUIRE(eventually([&] { return a.shared.holder(); }, 5s));
  b.shared.start();
  REQUIRE(eventually([&] { return a.finds("0312345678") && b.finds("0312345678"); }, 10s));
  CHECK_FALSE(b.shared.holder());
  CHECK(b.sync.progress().full_syncs + b.sync.progress().incremental_syncs == 0);

  // Three intervals: the holder reads kintone once per interval (one request per incremental
  // sync; both nodes syncing would double it).
  auto before = k.api_requests(14);
  std::this_thread::sleep_for(6s + 500ms);
  auto during = k.api_requests(14) - before;
  CHECK(during >= 2);
  CHECK(during <= 4);

  k.insert_record(14, customer("06-9876-5432", "大阪物産"));
  REQUIRE(eventually([&] { return a.finds("0698765432") && b.finds("0698765432"); }, 8s));

  // A sync asked for on the node that does not hold the lease: the holder runs it, and the
  // asking node has its result when the wait returns.
  k.insert_record(14, customer("011-222-3333", "札幌堂"));
  auto seen = b.shared.syncs();
  b.shared.request_sync();
  auto outcome = b.shared.wait_for_sync(seen, 5s);
  REQUIRE(outcome);
  CHECK(outcome->empty());
  CHECK(b.finds("0112223333"));

  // A stops: B takes the directory's lease over and keeps it current.
  a.shared.stop();
  REQUIRE(eventually([&] { return b.shared.holder(); }, 3s));
  k.insert_record(14, customer("052-111-2222", "名古屋商会"));
  REQUIRE(eventually([&] { return b.finds("0521112222"); }, 8s));
  CHECK(b.sync.progress().full_syncs == 1);  // a node taking the lease over imports once
  b.shared.stop();
}

TEST_CASE("shared OAuth tokens: one node refreshes, the other reads the new token",
          "[singleton][kintone-connector]") {
  FakeKintone k;
  k.add_app(7);
  const std::string redirect = "https://bridge.example.com/v1/kintone/oauth/main/callback";
  k.add_oauth_client("cid", "secret", redirect);
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1795000000));
  k.set_time(now);
  http::HttpClient transport;
  MemoryStore kv;
  rules::LocalLeases a_leases(kv, "node-a");
  auto b_leases = a_leases.as("node-b");
  kintone::OAuthSettings settings;
  settings.client_id = "cid";
  settings.client_secret = "secret";
  settings.redirect_uri = redirect;
  auto clock = [&] { return now; };
  kintone::OAuthTokens a("main", k.base_url(), settings, transport, &kv, clock, &a_leases);
  kintone::OAuthTokens b("main", k.base_url(), settings, transport, &kv, clock, b_leases.get());

  // Authorized through node A: node B has the token too.
  auto authorized = transport.perform({"GET", a.authorization_url(), {}, "", 5s});
  REQUIRE(authorized.status == 302);
  std::string location;
  for (const auto& [name, value] : authorized.headers)
    if (name == "Location" || name == "location") location = value;
  auto param = [&](const std::string& name) {
    auto at = location.find(name + "=");
    auto end = location.find('&', at);
    return location.substr(at + name.size() + 1, end == std::string::npos
                                                     ? std::string::npos
                                                     : end - at - name.size() - 1);
  };
  std::string error;
  REQUIRE(a.complete(param("code"), param("state"), error));
  auto first = b.access_token(false, error);
  REQUIRE(first);
  CHECK(*first == *a.access_token(false, error));
  CHECK(k.token_requests() == 1);

  // Near expiry: B refreshes once; A then reads B's token instead of refreshing again.
  now += std::chrono::seconds(3570);
  k.set_time(now);
  auto refreshed = b.access_token(false, error);
  REQUIRE(refreshed);
  CHECK(*refreshed != *first);
  CHECK(k.token_requests() == 2);
  CHECK(a.access_token(false, error) == refreshed);
  CHECK(k.token_requests() == 2);

  // kintone answers 401 to both: A refreshes, B takes A's token from the store.
  now += std::chrono::seconds(10);
  k.set_time(now);
  auto after_401 = a.access_token(true, error);
  REQUIRE(after_401);
  CHECK(k.token_requests() == 3);
  CHECK(b.access_token(true, error) == after_401);
  CHECK(k.token_requests() == 3);
  CHECK(a.refreshes() + b.refreshes() == 2);
}
