// The fake kintone's server: its apps, records, cursors and OAuth state (FakeKintone::Impl),
// shared by fake_kintone.cc (routes and the test API), fake_kintone_records.cc and
// fake_kintone_api.cc. Only the fake's own files include it.
#pragma once

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/fake_kintone_clock.h"
#include "tests/fakes/fake_kintone_query.h"

namespace callbridge::testing::kintone_fake {

constexpr std::size_t kMaxBulkRecords = 100;  // POST/PUT records.json
constexpr std::size_t kMaxOpenCursors = 10;   // per domain
constexpr int kMaxCursorSize = 500;

struct Comment {
  std::string id;
  std::string text;
  ojson mentions = ojson::array();
};

struct App {
  std::string record_number_field;
  std::optional<int> guest_space;  // unset: answers under every path (two-argument add_app)
  std::vector<std::string> tokens;
  std::vector<Record> records;  // ascending ID; kintone IDs only grow
  std::map<std::string, std::vector<Comment>> comments;
  long long next_id = 1;
  // updateKey lookups: field code -> value -> positions in `records`, built on first use.
  std::unordered_map<std::string, std::unordered_map<std::string, std::set<std::size_t>>> keys;
};

struct Cursor {
  int app = 0;
  std::vector<std::size_t> rows;  // positions in the app's records, in query order
  std::size_t next = 0, size = 100;
  std::vector<std::string> fields;
};

struct OAuthClient {
  std::string secret, redirect_uri;
};
struct AuthorizationCode {
  std::string client_id, redirect_uri, scope;
};
struct AccessToken {
  std::string client_id, scope;
  long long expires_at = 0;
  bool revoked = false;
};
struct RefreshToken {
  std::string client_id, scope;
};

struct KintoneError {
  int status;
  std::string code, message;
  ojson errors;
};

struct Answer {
  int status = 200;
  std::string body;
  httplib::Headers headers;
};

std::string random_id();
std::string random_hex(std::size_t length);
std::string random_uuid();
std::string error_body(const KintoneError& e);
Answer answer(const KintoneError& e);
KintoneError invalid_input(ojson errors);
std::string decode_base64(const std::string& in);
std::string percent_decode(std::string_view in);
std::string percent_encode(std::string_view in);
// application/x-www-form-urlencoded, as OAuth token requests send it.
std::map<std::string, std::string> parse_form(std::string_view body);
std::optional<int> as_int(const nlohmann::json& v);
std::string as_text(const nlohmann::json& v);
// Compact JSON exactly as ordered_json::dump() writes it, without a serializer per call:
// list answers of hundreds of records stay cheap in sanitizer builds.
void append_json_string(std::string& out, std::string_view s);
void append_json(std::string& out, const ojson& v);

}  // namespace callbridge::testing::kintone_fake

namespace callbridge::testing {

using namespace kintone_fake;  // the fake's own vocabulary, in its own files only

struct FakeKintone::Impl {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  mutable std::mutex mutex;
  std::map<int, App> apps;
  std::map<std::string, std::string> users;
  std::vector<KintoneRequestLog> log;
  int fail_count = 0, fail_status = 0;
  std::string fail_body;
  std::multimap<std::string, std::string> fail_headers;
  std::chrono::milliseconds delay{0};
  std::optional<std::chrono::system_clock::time_point> fixed_time;
  std::map<std::string, Cursor> cursors;
  std::map<int, std::uint64_t> api_counts;
  std::map<std::string, OAuthClient> oauth_clients;
  std::map<std::string, AuthorizationCode> oauth_codes;
  std::map<std::string, AccessToken> access_tokens;
  std::map<std::string, RefreshToken> refresh_tokens;
  std::chrono::seconds token_lifetime{3600};
  int token_request_count = 0;
  long long stamp() const { return floor_div(now(), 60) * 60; }  // kintone keeps minutes

  long long now() const {
    auto t = fixed_time.value_or(std::chrono::system_clock::now());
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  }

  void log_request(const httplib::Request& req) {
    KintoneRequestLog entry{req.method, req.path, {}, req.body, {}};
    for (const auto& [k, v] : req.headers) {
      std::string lower = k;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      entry.headers.emplace(lower, v);
    }
    for (const auto& [k, v] : req.params) entry.params.emplace(k, v);
    log.push_back(std::move(entry));
  }

  // ==== records and queries: fake_kintone_records.cc ====

  ojson render(const App& app, const Record& r, const std::vector<std::string>& fields) const;

  // render(...).dump(), built from cached text: a page of 500 records costs little.
  void render_json(const App& app, const Record& r, const std::vector<std::string>& fields,
                   std::string& out) const;

  std::string render_list(const App& app, const std::vector<std::size_t>& rows, std::size_t from,
                          std::size_t to, const std::vector<std::string>& fields) const;

  static ojson normalize_fields(const nlohmann::json& record);

  // ---- records: positions, the updateKey index, create and update ----

  std::optional<std::size_t> find(const App& app, const std::string& id) const;

  static std::string key_text(const App& app, const Record& r, const std::string& field);

  void unindex(App& app, std::size_t pos);

  void index(App& app, std::size_t pos);

  // The record an updateKey names; the last one when the fake holds duplicates.
  std::optional<std::size_t> find_by_key(App& app, const std::string& field,
                                         const std::string& value);

  std::size_t create(App& app, const nlohmann::json& record);

  void update(App& app, std::size_t pos, const nlohmann::json& record);

  // ---- queries ----

  // Positions of the records `q` selects, in its order: the first `want` of them, and how many
  // match in all when `total` is asked. Uses ID bounds and ID order to stay O(page) when it can.
  std::vector<std::size_t> select(const App& app, const Query& q, std::size_t want,
                                  std::size_t* total) const;

  std::optional<Query> parse_query(const App& app, const std::string& text,
                                   QueryError& error) const;

  static KintoneError query_error(const QueryError& e);

  // ==== authentication, the REST API and OAuth: fake_kintone_api.cc ====

  // ---- authentication ----

  static bool has_scope(const std::string& granted, const std::string& wanted);

  // Authentication, as kintone checks it: tokens belong to apps, passwords to users, OAuth
  // access tokens to the scopes granted.
  std::optional<KintoneError> authenticate(const httplib::Request& req, int app, bool write) const;

  Answer refuse(const httplib::Request& req, const KintoneError& e) const;

  // Guest space apps answer only under their /k/guest/{space}/v1/, others only under /k/v1/.
  static std::optional<KintoneError> check_path(const App& app, std::optional<int> path_space);

  // The app an API call names, for api_requests(): its `app`, or its cursor's.
  std::optional<int> app_of(const httplib::Request& req, const std::string& api) const;

  // ---- the REST API ----

  Answer handle(const std::string& method, const std::string& api, const httplib::Request& req,
                std::optional<int> path_space);

  // GET and DELETE /k/v1/records/cursor.json: the app is the cursor's.
  template <typename Param>
  Answer cursor_step(const std::string& method, const httplib::Request& req, Param& param,
                     std::optional<int> path_space);

  // ---- OAuth 2.0, authorization code grant ----

  static Answer oauth_error(int status, const std::string& error, const std::string& description);

  Answer authorize(const httplib::Request& req);

  Answer issue_token(const httplib::Request& req);
};

}  // namespace callbridge::testing
