// A fake kintone: a real HTTP server on 127.0.0.1 (port 0) speaking kintone's REST wire format,
// compact JSON byte for byte where users' regexes depend on it. Records what it received.
#pragma once

#include <chrono>
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
  void add_api_token(int app, std::string token);
  void add_user(std::string login, std::string password);
  // fields: {"電話番号": {"value": "03..."}, ...}; returns the new record's ID.
  std::string insert_record(int app, const nlohmann::json& fields);

  std::vector<nlohmann::json> records(int app) const;  // as kintone returns them, by ID
  std::vector<nlohmann::json> comments(int app,
                                       const std::string& record_id) const;  // newest first
  std::vector<KintoneRequestLog> requests() const;

  // The next `count` API calls answer `status` with `body` and change nothing.
  void fail_next(int count, int status, std::string body);
  void set_response_delay(std::chrono::milliseconds delay);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbridge::testing
