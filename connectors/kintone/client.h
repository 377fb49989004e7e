// A kintone REST API client over http::Transport: one per configured connection, shared by every
// rule and the directory sync. Thread-safe. Caps its concurrent requests (kintone allows 100 per
// domain), counts requests per app per day (kintone's daily limit is per app), retries throttling
// with backoff, and returns every outcome as a value; it never throws for kintone's trouble.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/kintone/errors.h"
#include "http/http_client.h"

namespace callbridge::kintone {

// The most records kintone returns for one request (a query's `limit`, a cursor's `size`).
inline constexpr int kMaxRecordsPerRequest = 500;

// Supplies OAuth 2.0 access tokens (oauth.h implements it).
class TokenProvider {
 public:
  virtual ~TokenProvider() = default;
  // A usable access token; `force_refresh` after kintone answered 401 to the current one.
  virtual std::optional<std::string> access_token(bool force_refresh, std::string& error) = 0;
};

struct Auth {
  std::vector<std::string> api_tokens;     // X-Cybozu-API-Token: T1,T2 (one per app of a lookup)
  std::string login, password;             // X-Cybozu-Authorization: base64(login:password)
  std::string basic_user, basic_password;  // the domain's extra Basic authentication
  std::shared_ptr<TokenProvider> oauth;    // Authorization: Bearer ACCESS
};

struct RetrySettings {
  int attempts = 3;  // in all, the first included
  std::chrono::milliseconds backoff{500};
  std::chrono::milliseconds max_backoff{10000};
};

struct Connection {
  std::string name;
  std::string base_url;  // https://example.cybozu.com, with the path prefix of a proxy if any
  int guest_space = 0;   // apps of a guest space answer under /k/guest/{space}/v1/
  Auth auth;
  int max_concurrency = 10;
  std::chrono::milliseconds timeout{10000};
  RetrySettings retry;
  std::size_t max_get_url_bytes = 4000;  // longer GETs go as POST + X-HTTP-Method-Override
  // Requests per app per day kintone allows (its default: 10,000); the count is shown against it.
  std::uint64_t daily_request_limit = 10000;
};

// One REST call before it becomes HTTP: what the dry run shows and the client performs.
struct ApiCall {
  std::string method;      // GET POST PUT DELETE
  std::string resource;    // "records", "record", "record/comment", "records/cursor"...
  nlohmann::json params;   // query parameters of a GET, the JSON body otherwise
  int app = 0;             // counted against this app's daily requests
  bool idempotent = true;  // false: never repeated after it may have reached kintone
};

struct Result {
  http::Outcome outcome;          // the last exchange
  std::optional<ApiError> error;  // set when the call failed, classified
  nlohmann::json body;            // kintone's answer when it succeeded
  int attempts = 0;               // HTTP exchanges made for this call
  bool ok() const { return !error.has_value(); }
  ErrorClass error_class() const { return error ? error->kind : ErrorClass::none; }
  std::string error_text() const { return error ? error->summary() : std::string(); }
};

// A condition of a search; values are always written as kintone string literals.
struct Condition {
  std::string field;
  std::string op = "=";  // = != > < >= <= like, "in", "not in"
  std::vector<std::string> values;
};

struct FindQuery {
  std::vector<Condition> where;  // joined with `and`
  std::string query;             // a free query, ANDed in brackets; the caller escapes its values
  std::vector<std::string> fields;
  std::string order_by;  // "$id desc"
  int limit = 100;       // 1-500
  int offset = 0;        // 0-10000
  bool total_count = true;
};

// kintone field codes: no spaces, quotes, brackets, commas or operators.
bool valid_field_code(std::string_view code);
// The query text of `q` without order/limit/offset (empty: every record).
std::string build_condition(const FindQuery& q);
// The whole query text, with order by, limit and offset.
std::string build_query(const FindQuery& q);

// Identifies one record for update: its ID, or a field whose values are unique (updateKey).
struct RecordKey {
  std::string id;
  std::string field, value;  // used when `id` is empty
};

struct UpsertItem {
  std::string key_field, key_value;
  nlohmann::json record;  // {"field": {"value": ...}}
};

struct Mention {
  std::string code;
  std::string type = "USER";  // USER GROUP ORGANIZATION
};

enum class Paging {
  id,      // `$id > last order by $id asc limit 500`: any size, no cursor to clean up
  cursor,  // the cursor API: needed for a query with its own `order by`
};

// The REST calls, for display (dry runs) and for Client::call.
ApiCall get_call(int app, std::string_view id);
ApiCall find_call(int app, const FindQuery& q);
ApiCall create_call(int app, const nlohmann::json& record);
ApiCall update_call(int app, const RecordKey& key, const nlohmann::json& record,
                    std::optional<long long> revision);
ApiCall upsert_call(int app, const std::vector<UpsertItem>& items);  // at most 100 items
ApiCall comment_call(int app, std::string_view id, std::string_view text,
                     const std::vector<Mention>& mentions);

class Client {
 public:
  using Sleep = std::function<void(std::chrono::milliseconds)>;
  // Sees each request as it leaves, auth secrets shown as [secret]; false cancels the call.
  using BeforeSend = std::function<bool(const http::Request& shown)>;

  // `sleep` waits between retries (tests pass one that records instead of waiting).
  Client(Connection connection, http::Transport& transport, Sleep sleep = {});
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const Connection& connection() const { return connection_; }

  // The HTTP request for `call`; `redacted` shows credentials as [secret] and asks no token.
  http::Request build(const ApiCall& call, bool redacted) const;
  // Performs `call` with auth, the concurrency cap, retries and counting.
  Result call(const ApiCall& call, const BeforeSend& before_send = {});

  Result get(int app, std::string_view id);
  Result find(int app, const FindQuery& q);
  // Every record matching `query` (no limit/offset in it), page by page, whatever the app's
  // size; `visit` returns false to stop. The result's body is {"count": N}.
  Result find_all(int app, const std::string& query, const std::vector<std::string>& fields,
                  const std::function<bool(nlohmann::json&& record)>& visit,
                  Paging paging = Paging::id, int page_size = kMaxRecordsPerRequest);
  Result create(int app, const nlohmann::json& record);
  // With a revision, a 409 conflict re-reads the record's revision and tries once more.
  Result update(int app, const RecordKey& key, const nlohmann::json& record,
                std::optional<long long> revision = std::nullopt,
                const BeforeSend& before_send = {});
  // PUT records.json with upsert, 100 records per request. Body {"records": [{id, revision,
  // operation}...]}; on failure, the records of the batches that went through.
  Result upsert(int app, const std::vector<UpsertItem>& items);
  Result add_comment(int app, std::string_view id, std::string_view text,
                     const std::vector<Mention>& mentions = {});

  // Prometheus lines: requests per app (total and today), in flight, failures by class.
  void metrics(std::string& out) const;
  std::uint64_t requests_today(int app) const;
  int in_flight() const { return in_flight_.load(); }

  // The requests of each app this client has sent since it started (this process only).
  struct AppUsage {
    int app = 0;
    std::uint64_t total = 0, today = 0;  // today: since 00:00 UTC (09:00 JST), kintone's day
  };
  std::vector<AppUsage> usage() const;                    // by app
  std::map<std::string, std::uint64_t> failures() const;  // by error class

 private:
  std::string api_url(std::string_view resource) const;
  void acquire();
  void release();
  void count(int app, const std::optional<ApiError>& error);

  Connection connection_;
  http::Transport& transport_;
  Sleep sleep_;

  mutable std::mutex slots_mutex_;
  std::condition_variable slots_free_;
  int slots_used_ = 0;
  std::atomic<int> in_flight_{0};

  struct AppCounter {
    std::uint64_t total = 0;
    std::string day;  // UTC date: kintone's daily count resets at 09:00 JST
    std::uint64_t today = 0;
  };
  mutable std::mutex counters_mutex_;
  std::map<int, AppCounter> counters_;
  std::map<std::string, std::uint64_t> failures_;  // by error class
};

}  // namespace callbridge::kintone
