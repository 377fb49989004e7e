// The web console's safety: password hashes, sessions, CSRF, roles, the sign-in limiter and the
// security headers, unit by unit and through the real binary.
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "bridge/app.h"
#include "bridge/connectors.h"
#include "bridge/console_auth.h"
#include "bridge/console_phone.h"
#include "bridge/journal/journal.h"
#include "rules/config.h"
#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/certificate.h"

using namespace callbridge;
using namespace callbridge::testing;
using json = nlohmann::json;

TEST_CASE("console passwords are salted PBKDF2 hashes that verify", "[console][auth]") {
  std::string a = bridge::hash_password("correct horse", 1000);
  std::string b = bridge::hash_password("correct horse", 1000);
  CHECK(a.rfind("pbkdf2-sha256$1000$", 0) == 0);
  CHECK(a != b);  // a fresh salt each time
  CHECK(bridge::verify_password("correct horse", a));
  CHECK(bridge::verify_password("correct horse", b));
  CHECK_FALSE(bridge::verify_password("correct horsE", a));
  CHECK_FALSE(bridge::verify_password("", a));
  CHECK(bridge::password_hash_problem(a).empty());
  CHECK_FALSE(bridge::password_hash_problem("secret").empty());
  CHECK_FALSE(bridge::password_hash_problem("pbkdf2-sha256$10$AAAAAAAAAAA=$AAAA").empty());
  CHECK_FALSE(bridge::verify_password("secret", "secret"));
  // The default cost is what OWASP asks of PBKDF2-HMAC-SHA256.
  CHECK(bridge::kDefaultPasswordIterations >= 310000);
}

TEST_CASE("console phone keys read a number written any way", "[console][phone]") {
  for (const char* written :
       {"0312345678", "03-1234-5678", "(03)1234-5678", "+81-3-1234-5678", "+81 3 1234 5678",
        "０３－１２３４－５６７８", "０３ー１２３４ー５６７８"})
    CHECK(bridge::console_phone_key(written) == std::optional<std::string>("0312345678"));
  CHECK(bridge::console_phone_key("+1 415 555 0100") == std::optional<std::string>("+14155550100"));
  CHECK_FALSE(bridge::console_phone_key("anonymous"));
  CHECK_FALSE(bridge::console_phone_key("非通知"));
  CHECK_FALSE(bridge::console_phone_key(""));
}

TEST_CASE("console sessions expire after their lifetime", "[console][auth]") {
  bridge::ConsoleSessions sessions;
  std::string token = sessions.create("ann", bridge::ConsoleRole::viewer, std::chrono::minutes(5));
  auto s = sessions.find(token);
  REQUIRE(s);
  CHECK(s->user == "ann");
  CHECK(s->csrf.size() == 64);
  CHECK(s->csrf != token);
  CHECK_FALSE(sessions.find(token + "x"));
  sessions.advance(std::chrono::minutes(4));
  CHECK(sessions.find(token));
  sessions.advance(std::chrono::minutes(2));
  CHECK_FALSE(sessions.find(token));
}

TEST_CASE("failed sign-ins are slowed, doubling, and forgotten on success", "[console][auth]") {
  bridge::SignInLimiter limiter(3, std::chrono::minutes(15), std::chrono::seconds(8));
  auto t = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.wait("k", t).count() == 0);
    limiter.failed("k", t);
  }
  CHECK(limiter.wait("k", t).count() == 1);
  limiter.failed("k", t);
  CHECK(limiter.wait("k", t).count() == 2);
  limiter.failed("k", t);
  limiter.failed("k", t);
  limiter.failed("k", t);
  CHECK(limiter.wait("k", t).count() == 8);  // capped
  CHECK(limiter.wait("k", t + std::chrono::seconds(9)).count() == 0);
  CHECK(limiter.wait("other", t).count() == 0);
  limiter.succeeded("k");
  CHECK(limiter.wait("k", t).count() == 0);
}

TEST_CASE("console users are checked at load with located errors", "[console][config]") {
  TempDir dir;
  std::string good = bridge::hash_password("pw", 1000);
  std::string path = dir.write("c.yaml",
                               "console:\n"
                               "  session_minutes: 0\n"
                               "  users:\n"
                               "    - { name: ann, role: admin, password_hash: \"" +
                                   good +
                                   "\" }\n"
                                   "    - { name: bob, role: viewer, password_hash: plain }\n"
                                   "    - { name: ann, role: viewer, password_hash: \"" +
                                   good +
                                   "\" }\n"
                                   "    - { name: cy, role: viewer }\n");
  auto registry = bridge::with_bridge_sections(bridge::connector_registry());
  auto result = rules::load_config_file(path, rules::process_env, registry);
  CHECK_FALSE(result.config);
  std::string all;
  for (const auto& d : result.errors) all += d.format() + "\n";
  INFO(all);
  CHECK(all.find("c.yaml:2:20: error: \"console.session_minutes\"") != std::string::npos);
  CHECK(all.find("c.yaml:4:") != std::string::npos);
  CHECK(all.find("viewer, operator") != std::string::npos);
  CHECK(all.find("c.yaml:5:") != std::string::npos);
  CHECK(all.find("pbkdf2-sha256$ITERATIONS$SALT$HASH") != std::string::npos);
  CHECK(all.find("\"ann\" is listed twice") != std::string::npos);
  CHECK(all.find("password_hash") != std::string::npos);
}

namespace {

// A CRM that answers 503 until it is told to work.
struct FlakyCrm {
  httplib::Server server;
  std::atomic<bool> up{false};
  std::atomic<int> hits{0};
  int port = 0;
  std::thread thread;
  FlakyCrm() {
    server.Get("/crm", [this](const httplib::Request&, httplib::Response& res) {
      ++hits;
      res.status = up ? 200 : 503;
      res.set_content(up ? R"({"ok":true})" : R"({"error":"down"})", "application/json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~FlakyCrm() {
    server.stop();
    thread.join();
  }
};

struct ConsoleBridge {
  FlakyCrm crm;
  Bridge bridge;
  // `extra_top`: top-level sections before `console:` (a kintone connection...).
  ConsoleBridge(const std::string& extra_console = "", const std::string& extra_top = "") {
    std::string op = bridge::hash_password("op-password", 1000);
    std::string viewer = bridge::hash_password("viewer-password", 1000);
    bridge.write_config(
        "rules:\n"
        "  - name: notify-crm\n"
        "    event: inbound\n"
        "    request: { method: GET, url: \"http://127.0.0.1:" +
            std::to_string(crm.port) +
            "/crm?tel={TEL}\" }\n"
            "    retry: { attempts: 2, backoff_ms: 10, max_backoff_ms: 20, on: [5xx] }\n",
        extra_top + "console:\n" + extra_console +
            "  users:\n"
            "    - { name: opal, role: operator, password_hash: \"" +
            op +
            "\" }\n"
            "    - { name: vic, role: viewer, password_hash: \"" +
            viewer + "\" }\n");
  }
  httplib::Client plain() const {
    httplib::Client c("127.0.0.1", bridge.port());
    c.set_read_timeout(10, 0);
    return c;
  }
};

struct Session {
  std::string cookie, csrf;
};

std::optional<Session> sign_in(const ConsoleBridge& b, const std::string& name,
                               const std::string& password, int* status = nullptr) {
  auto r = b.plain().Post("/console/login", json{{"name", name}, {"password", password}}.dump(),
                          "application/json");
  if (status) *status = r ? r->status : 0;
  if (!r || r->status != 200) return std::nullopt;
  std::string set = r->get_header_value("Set-Cookie");
  Session s;
  s.cookie = set.substr(0, set.find(';'));
  s.csrf = json::parse(r->body)["csrf"];
  return s;
}

void check_security_headers(const httplib::Result& r) {
  REQUIRE(r);
  INFO(r->status);
  CHECK(r->get_header_value("Content-Security-Policy").find("default-src 'self'") !=
        std::string::npos);
  CHECK(r->get_header_value("Content-Security-Policy").find("unsafe-inline") == std::string::npos);
  CHECK(r->get_header_value("X-Frame-Options") == "DENY");
  CHECK(r->get_header_value("X-Content-Type-Options") == "nosniff");
}

}  // namespace

TEST_CASE("console sign-in, cookie, roles and CSRF through the real server", "[console][server]") {
  ConsoleBridge b;
  REQUIRE(b.bridge.start());
  auto c = b.plain();

  // `/` leads to the console; the console to sign-in without a session.
  auto root = c.Get("/");
  check_security_headers(root);
  CHECK(root->status == 302);
  CHECK(root->get_header_value("Location") == "/console/");
  auto index = c.Get("/console/");
  check_security_headers(index);
  CHECK(index->status == 302);
  CHECK(index->get_header_value("Location") == "/console/login");
  auto login_page = c.Get("/console/login");
  check_security_headers(login_page);
  CHECK(login_page->status == 200);
  CHECK(login_page->body.find("<script src=\"/console/login.js\"") != std::string::npos);
  CHECK(login_page->body.find("<script>") == std::string::npos);  // no inline script
  check_security_headers(c.Get("/console/app.js"));
  auto missing = c.Get("/console/nothing-here.js");
  check_security_headers(missing);
  CHECK(missing->status == 404);
  auto anonymous = c.Get("/console/api/calls");
  check_security_headers(anonymous);
  CHECK(anonymous->status == 401);

  int status = 0;
  CHECK_FALSE(sign_in(b, "opal", "wrong", &status));
  CHECK(status == 401);
  CHECK_FALSE(sign_in(b, "nobody", "op-password", &status));
  CHECK(status == 401);
  auto raw = c.Post("/console/login", json{{"name", "opal"}, {"password", "op-password"}}.dump(),
                    "application/json");
  REQUIRE(raw);
  REQUIRE(raw->status == 200);
  check_security_headers(raw);
  std::string set_cookie = raw->get_header_value("Set-Cookie");
  CHECK(set_cookie.find("HttpOnly") != std::string::npos);
  CHECK(set_cookie.find("SameSite=Strict") != std::string::npos);
  CHECK(set_cookie.find("Max-Age=28800") != std::string::npos);
  CHECK(set_cookie.find("Secure") == std::string::npos);  // plain HTTP here
  auto op = sign_in(b, "opal", "op-password");
  auto viewer = sign_in(b, "vic", "viewer-password");
  REQUIRE(op);
  REQUIRE(viewer);

  // A dead letter to replay: the CRM answers 503 twice.
  REQUIRE(b.bridge.post_event({{"event", "inbound"}, {"call_id", "X1"}, {"tel", "03-1234-5678"}})
              ->status == 202);
  json call = b.bridge.wait_done("X1", 1);
  REQUIRE(call["events"][0]["actions"].back()["state"] == "dead");

  httplib::Headers op_headers{{"Cookie", op->cookie}};
  auto me = c.Get("/console/api/me", op_headers);
  check_security_headers(me);
  REQUIRE(me->status == 200);
  CHECK(json::parse(me->body)["role"] == "operator");
  auto found = c.Get("/console/api/calls?phone=%2B81%203%201234%205678", op_headers);
  REQUIRE(found->status == 200);
  REQUIRE(json::parse(found->body)["calls"].size() == 1);
  CHECK(json::parse(found->body)["calls"][0]["outcome"] == "dead");

  std::string replay_body =
      json{{"targets", {{{"event_id", "ev-1"}, {"rule", "notify-crm"}}}}}.dump();
  // Without the CSRF token, with a wrong one, from a viewer: refused, nothing sent.
  int hits = b.crm.hits;
  auto no_csrf = c.Post("/console/api/replay", op_headers, replay_body, "application/json");
  check_security_headers(no_csrf);
  CHECK(no_csrf->status == 403);
  CHECK(error_code(no_csrf) == "csrf_required");
  httplib::Headers wrong{{"Cookie", op->cookie}, {"X-CSRF-Token", viewer->csrf}};
  CHECK(c.Post("/console/api/replay", wrong, replay_body, "application/json")->status == 403);
  httplib::Headers as_viewer{{"Cookie", viewer->cookie}, {"X-CSRF-Token", viewer->csrf}};
  auto refused = c.Post("/console/api/replay", as_viewer, replay_body, "application/json");
  CHECK(refused->status == 403);
  CHECK(error_code(refused) == "forbidden");
  CHECK(c.Post("/console/api/rules/reload", as_viewer, "", "application/json")->status == 403);
  CHECK(b.crm.hits == hits);
  // A viewer may look.
  CHECK(c.Get("/console/api/failures", as_viewer)->status == 200);
  // ...and run a dry simulation, but not send one.
  auto dry = c.Post("/console/api/simulate", as_viewer,
                    json{{"event", "inbound"}, {"tel", "0311112222"}}.dump(), "application/json");
  REQUIRE(dry->status == 200);
  auto simulated = json::parse(dry->body);
  REQUIRE(simulated["rules"].size() == 1);
  CHECK(simulated["rules"][0]["request"]["url"].get<std::string>().find("tel=0311112222") !=
        std::string::npos);
  CHECK(simulated["sent"] == false);
  CHECK(c.Post("/console/api/simulate", as_viewer,
               json{{"event", "inbound"}, {"tel", "0311112222"}, {"send", true}}.dump(),
               "application/json")
            ->status == 403);

  // Connector routes through the console: reading for anyone, the rest for operators.
  CHECK(c.Get("/console/api/route/v1/escalation/chains", as_viewer)->status == 404);
  CHECK(c.Post("/console/api/route/v1/kintone/directory/sync", as_viewer, "{}", "application/json")
            ->status == 403);
  CHECK(c.Post("/console/api/route/v1/kintone/directory/sync", op_headers, "{}", "application/json")
            ->status == 403);  // no CSRF token

  // The operator with the token replays; the CRM works now.
  b.crm.up = true;
  httplib::Headers op_post{{"Cookie", op->cookie}, {"X-CSRF-Token", op->csrf}};
  auto replayed = c.Post("/console/api/replay", op_post, replay_body, "application/json");
  REQUIRE(replayed->status == 200);
  auto results = json::parse(replayed->body)["results"];
  REQUIRE(results.size() == 1);
  CHECK(results[0]["state"] == "succeeded");
  CHECK(json::parse(c.Get("/console/api/failures", op_headers)->body)["failures"].empty());

  // A bridge token needs no CSRF token (scripts).
  auto by_token = b.bridge.client().Post("/console/api/replay", json{{"since_ms", 0}}.dump(),
                                         "application/json");
  CHECK(by_token->status == 200);

  auto overview = json::parse(c.Get("/console/api/overview?hours=1", op_headers)->body);
  CHECK(overview["actions"]["replayed"] == 1);  // the dead letter, replayed above
  CHECK(overview["latency_ms"]["p95"].is_number());
  CHECK(overview["events_per_minute"].size() >= 1);

  // Signing out ends the session.
  CHECK(c.Post("/console/logout", op_post, "", "application/json")->status == 200);
  CHECK(c.Get("/console/api/me", op_headers)->status == 401);
  CHECK(b.bridge.process->log().find("op-password") == std::string::npos);
}

TEST_CASE("repeated wrong passwords are slowed and logged without the password",
          "[console][server]") {
  ConsoleBridge b;
  REQUIRE(b.bridge.start());
  int status = 0;
  for (int i = 0; i < 5; ++i) {
    CHECK_FALSE(sign_in(b, "opal", "guess-" + std::to_string(i), &status));
    CHECK(status == 401);
  }
  auto r =
      b.plain().Post("/console/login", json{{"name", "opal"}, {"password", "op-password"}}.dump(),
                     "application/json");
  REQUIRE(r);
  CHECK(r->status == 429);
  CHECK(r->get_header_value("Retry-After") == "1");
  check_security_headers(r);
  std::string log = b.bridge.process->log();
  CHECK(log.find("console sign-in failed") != std::string::npos);
  CHECK(log.find("guess-") == std::string::npos);
}

TEST_CASE("a console session ends after console.session_minutes", "[console][server]") {
  // Fractions of a minute are allowed: 0.05 is three seconds, the shortest.
  ConsoleBridge b("  session_minutes: 0.05\n");
  REQUIRE(b.bridge.start());
  auto signed_in = std::chrono::steady_clock::now();
  auto session = sign_in(b, "vic", "viewer-password");
  REQUIRE(session);
  httplib::Headers headers{{"Cookie", session->cookie}};
  auto first = b.plain().Get("/console/api/me", headers);
  REQUIRE(first);
  CHECK(first->status == 200);
  // Asked until refused: it must take the session's lifetime, and not much longer.
  int status = 200;
  while (status == 200 && std::chrono::steady_clock::now() - signed_in < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto r = b.plain().Get("/console/api/me", headers);
    REQUIRE(r);
    status = r->status;
  }
  auto lasted = std::chrono::steady_clock::now() - signed_in;
  CHECK(status == 401);
  CHECK(lasted >= std::chrono::milliseconds(2900));
  CHECK(lasted < std::chrono::seconds(6));
  auto index = b.plain().Get("/console/", headers);
  REQUIRE(index);
  CHECK(index->status == 302);
  CHECK(index->get_header_value("Location") == "/console/login");
}

TEST_CASE("console.session_minutes: fractions, and what is refused", "[console][config]") {
  auto registry = bridge::with_bridge_sections(bridge::connector_registry());
  auto minutes = [&](const std::string& value) {
    return rules::load_config_text("console:\n  session_minutes: " + value + "\n", "s.yaml",
                                   rules::process_env, registry);
  };
  auto ok = minutes("0.5");
  REQUIRE(ok.config);
  auto settings = ok.config->section<bridge::ConsoleSettings>("console");
  CHECK(settings->session_lifetime() == std::chrono::seconds(30));
  CHECK(minutes("10080").config);
  for (const char* bad : {"0.01", "0", "10081", "abc", "1e", "nan", "-1"}) {
    auto r = minutes(bad);
    INFO(bad);
    CHECK_FALSE(r.config);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].format() == std::string("s.yaml:2:20: error: \"console.session_minutes\": "
                                              "must be a number of minutes between 0.05 and "
                                              "10080, got \"") +
                                      bad + "\"");
  }
}

TEST_CASE("console call search filters and pages by key", "[console][journal]") {
  TempDir dir;
  std::string error;
  auto journal = bridge::Journal::open({dir.path() + "/j.db", false, 512}, error);
  REQUIRE(journal);
  // 30 calls: every third dead, every fifth (not dead) failed, call 7 still running; calls 0-9
  // from 03-1111-2222, and each call has a second event after another call's first.
  std::vector<std::string> expected_dead;
  for (int i = 0; i < 30; ++i) {
    std::string id = "C" + std::to_string(i);
    std::string tel = i < 10 ? "03-1111-2222" : "0" + std::to_string(900000000 + i);
    auto first = journal->append_event(
        id, "inbound", json{{"event", "inbound"}, {"call_id", id}, {"tel", tel}}.dump(), error);
    REQUIRE(first);
    bridge::ActionRecord a;
    a.event_seq = first->seq;
    a.rule = "notify";
    a.state = i % 3 == 0   ? bridge::ActionState::dead
              : i % 5 == 0 ? bridge::ActionState::http_error
                           : bridge::ActionState::succeeded;
    REQUIRE(journal->record_action(a, error));
    if (i != 7)
      REQUIRE(journal->finish_event(first->seq, bridge::EventState::done, id, "{}", error));
    if (i % 3 == 0) expected_dead.insert(expected_dead.begin(), id);
    if (i > 0) {
      std::string prev = "C" + std::to_string(i - 1);
      auto second = journal->append_event(prev, "hangup", json{{"call_id", prev}}.dump(), error);
      REQUIRE(second);
      REQUIRE(journal->finish_event(second->seq, bridge::EventState::done, prev, "{}", error));
    }
  }
  auto ids = [](const std::vector<bridge::Journal::CallRow>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.call_id);
    return out;
  };
  // Paging the dead ones two at a time finds each once, newest first.
  std::vector<std::string> dead;
  bridge::Journal::CallQuery q;
  q.outcome = "dead";
  q.limit = 2;
  for (int page = 0; page < 20; ++page) {
    auto rows = journal->search_calls(q);
    for (const auto& r : rows) CHECK(r.outcome == "dead");
    auto got = ids(rows);
    dead.insert(dead.end(), got.begin(), got.end());
    if (rows.size() < q.limit) break;
    q.before_seq = rows.back().seq;
  }
  CHECK(dead == expected_dead);

  bridge::Journal::CallQuery failed;
  failed.outcome = "failed";
  CHECK(ids(journal->search_calls(failed)) == std::vector<std::string>{"C25", "C20", "C10", "C5"});
  bridge::Journal::CallQuery running;
  running.outcome = "running";
  CHECK(ids(journal->search_calls(running)) == std::vector<std::string>{"C7"});

  bridge::Journal::CallQuery phone;
  phone.phone_key = *bridge::console_phone_key("＋８１３１１１１２２２２");
  phone.limit = 4;
  CHECK(ids(journal->search_calls(phone)) == std::vector<std::string>{"C9", "C8", "C7", "C6"});
  phone.outcome = "dead";
  CHECK(ids(journal->search_calls(phone)) == std::vector<std::string>{"C9", "C6", "C3", "C0"});

  bridge::Journal::CallQuery all;
  all.limit = 100;
  auto everything = journal->search_calls(all);
  REQUIRE(everything.size() == 30);
  CHECK(everything[0].call_id == "C29");
  CHECK(everything[29].events == 2);
  // Calls may share a millisecond: the range is [C9's, C19's + 1 ms), at least C9 to C19.
  bridge::Journal::CallQuery range;
  range.from_ms = everything[20].first_at_ms;    // C9
  range.to_ms = everything[10].first_at_ms + 1;  // C19
  range.limit = 100;
  auto in_range = ids(journal->search_calls(range));
  CHECK(in_range.size() >= 11);
  CHECK(std::find(in_range.begin(), in_range.end(), "C9") != in_range.end());
  CHECK(std::find(in_range.begin(), in_range.end(), "C19") != in_range.end());
  for (const auto& r : journal->search_calls(range)) {
    CHECK(r.first_at_ms >= range.from_ms);
    CHECK(r.first_at_ms < range.to_ms);
  }
  bridge::Journal::CallQuery by_id;
  by_id.call_id = "C12";
  CHECK(ids(journal->search_calls(by_id)) == std::vector<std::string>{"C12"});
  bridge::Journal::CallQuery by_event;
  by_event.event = "hangup";
  by_event.limit = 100;
  CHECK(journal->search_calls(by_event).size() == 29);
}

TEST_CASE("the console's session cookie is Secure under TLS", "[console][server][tls]") {
  Bridge bridge;
  auto [cert_pem, key_pem] = self_signed("console.test");
  REQUIRE(!cert_pem.empty());
  std::string cert = bridge.dir.write("cert.pem", cert_pem);
  std::string key = bridge.dir.write("key.pem", key_pem);
  bridge.config_path = bridge.dir.write(
      "callbridge.yaml", "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kBridgeToken +
                             "\"]\n  tls: { cert_file: " + cert + ", key_file: " + key +
                             " }\nstorage:\n  path: " + bridge.dir.path() +
                             "/journal.db\nconsole:\n  users:\n    - { name: ann, role: viewer, "
                             "password_hash: \"" +
                             bridge::hash_password("pw", 1000) + "\" }\n");
  REQUIRE(bridge.start());
  httplib::SSLClient https("127.0.0.1", bridge.port());
  https.enable_server_certificate_verification(false);
  auto r = https.Post("/console/login", json{{"name", "ann"}, {"password", "pw"}}.dump(),
                      "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  std::string cookie = r->get_header_value("Set-Cookie");
  CHECK(cookie.find("; Secure") != std::string::npos);
  CHECK(cookie.find("HttpOnly") != std::string::npos);
  check_security_headers(r);
}

TEST_CASE("console: a GET that starts an OAuth authorization is for operators only",
          "[console][kintone]") {
  ConsoleBridge b("",
                  "kintone:\n"
                  "  connections:\n"
                  "    crm:\n"
                  "      url: https://example.cybozu.com\n"
                  "      oauth:\n"
                  "        client_id: callbridge\n"
                  "        client_secret: oauth-client-secret\n"
                  "        redirect_uri: https://bridge.example/v1/kintone/oauth/crm/callback\n");
  REQUIRE(b.bridge.start());
  auto op = sign_in(b, "opal", "op-password");
  auto viewer = sign_in(b, "vic", "viewer-password");
  REQUIRE(op);
  REQUIRE(viewer);
  auto c = b.plain();
  const std::string start = "/console/api/route/v1/kintone/oauth/crm/start";
  auto refused = c.Get(start, httplib::Headers{{"Cookie", viewer->cookie}});
  REQUIRE(refused);
  CHECK(refused->status == 403);
  CHECK(error_code(refused) == "forbidden");
  auto started = c.Get(start, httplib::Headers{{"Cookie", op->cookie}});
  REQUIRE(started);
  CHECK(started->status == 302);
  CHECK(started->get_header_value("Location").find("https://example.cybozu.com/oauth2/") == 0);
  // Reading stays open to viewers.
  CHECK(c.Get("/console/api/route/v1/kintone/connections",
              httplib::Headers{{"Cookie", viewer->cookie}})
            ->status == 200);
}
