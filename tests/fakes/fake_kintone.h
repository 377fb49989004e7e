// A fake kintone: a real HTTP server on 127.0.0.1 (port 0) speaking kintone's REST wire format,
// compact JSON byte for byte where users' regexes depend on it. Records what it received.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace callbridge::testing {

struct KintoneRequestLog {
  std::string method;
  std::string path;
  std::multimap<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::multimap<std::string, std::string> params;
};

class FakeKintone {
 public:
  // Listening when it returns; port 0 picks a free one.
  explicit FakeKintone(int port = 0);
  ~FakeKintone();
  FakeKintone(const FakeKintone&) = delete;
  FakeKintone& operator=(const FakeKintone&) = delete;

  int port() const;
  std::string base_url() const;  // http://127.0.0.1:PORT

  void add_app(int app, std::string record_number_field = "record_no");
  // Strict paths: an app of guest space `guest_space` answers only under /k/guest/{space}/v1/,
  // one with 0 only under /k/v1/ (kintone's errors elsewhere). The overload above answers both.
  void add_app(int app, std::string record_number_field, int guest_space);
  void add_api_token(int app, std::string token);
  void add_user(std::string login, std::string password);
  // fields: {"電話番号": {"value": "03..."}, ...}; returns the new record's ID.
  // A new record may carry 作成日時/更新日時 ("2026-11-22T10:15:00Z"), as kintone allows.
  std::string insert_record(int app, const nlohmann::json& fields);
  // insert_record for big fixtures (25,000-100,000 records) under one lock; IDs continue in order.
  void insert_records(int app, const std::vector<nlohmann::json>& fields);
  std::size_t record_count(int app) const;  // cheap, unlike records(app).size()

  // The clock stamping 作成日時/更新日時 (minute precision) and expiring OAuth tokens.
  // A default-constructed time_point (the initial state) means real time.
  void set_time(std::chrono::system_clock::time_point now);

  std::vector<nlohmann::json> records(int app) const;  // as kintone returns them, by ID
  std::vector<nlohmann::json> comments(int app,
                                       const std::string& record_id) const;  // newest first
  std::vector<KintoneRequestLog> requests() const;

  // The next `count` API calls answer `status` with `body` and change nothing.
  void fail_next(int count, int status, std::string body);
  // The same, also sending `headers` (e.g. {"Retry-After", "2"} with a 429).
  void fail_next(int count, int status, std::string body,
                 std::multimap<std::string, std::string> headers);
  void set_response_delay(std::chrono::milliseconds delay);

  // OAuth 2.0 authorization code flow (/oauth2/authorization, /oauth2/token); API calls then
  // accept "Authorization: Bearer ACCESS". Authorization is granted without a login page.
  void add_oauth_client(std::string client_id, std::string client_secret, std::string redirect_uri);
  void set_access_token_lifetime(std::chrono::seconds lifetime);  // default 3600 s
  void expire_access_tokens();  // access tokens issued so far answer 401 from now on
  int token_requests() const;   // calls of /oauth2/token, whatever their outcome

  // API calls naming `app` (or a cursor of it), whatever their outcome, fail_next included.
  std::uint64_t api_requests(int app) const;
  std::size_t open_cursors() const;  // cursors created and neither read to the end nor deleted

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbridge::testing
