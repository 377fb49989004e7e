#include "connectors/kintone/client.h"

#include <algorithm>
#include <ctime>
#include <thread>

#include "rules/template.h"

namespace callbridge::kintone {

using nlohmann::json;

namespace {

std::string today_utc() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string param_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

// kintone's GET parameters: scalars as is, arrays as name[0]=..&name[1]=..
std::string query_string(const json& params) {
  std::string out;
  auto add = [&](const std::string& key, const std::string& value) {
    out += out.empty() ? "" : "&";
    out += key + "=" + rules::percent_encode(value);
  };
  for (const auto& [key, value] : params.items()) {
    if (value.is_null()) continue;
    if (value.is_array()) {
      for (std::size_t i = 0; i < value.size(); ++i)
        add(key + "[" + std::to_string(i) + "]", param_text(value[i]));
    } else {
      add(key, param_text(value));
    }
  }
  return out;
}

std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

json to_json_record(const json& record) {
  return record.is_null() ? json::object() : record;
}

}  // namespace

bool valid_field_code(std::string_view code) {
  if (code.empty() || code.size() > 128) return false;
  for (char c : code) {
    if (std::string_view(" \t\r\n\"'()=!<>,\\").find(c) != std::string_view::npos) return false;
  }
  return true;
}

std::string build_condition(const FindQuery& q) {
  std::string out;
  for (const auto& c : q.where) {
    if (!out.empty()) out += " and ";
    out += c.field + " ";
    if (c.op == "in" || c.op == "not in") {
      out += c.op + " (";
      for (std::size_t i = 0; i < c.values.size(); ++i)
        out += (i ? ", " : "") + rules::kintone_query_literal(c.values[i]);
      out += ")";
    } else {
      out += c.op + " " + rules::kintone_query_literal(c.values.empty() ? "" : c.values[0]);
    }
  }
  if (!q.query.empty()) out += out.empty() ? "(" + q.query + ")" : " and (" + q.query + ")";
  return out;
}

std::string build_query(const FindQuery& q) {
  std::string out = build_condition(q);
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : " ") + part; };
  if (!q.order_by.empty()) add("order by " + q.order_by);
  add("limit " + std::to_string(q.limit));
  if (q.offset > 0) add("offset " + std::to_string(q.offset));
  return out;
}

ApiCall get_call(int app, std::string_view id) {
  return {"GET", "record", json{{"app", app}, {"id", std::string(id)}}, app, true};
}

ApiCall find_call(int app, const FindQuery& q) {
  json params{{"app", app}, {"query", build_query(q)}};
  if (!q.fields.empty()) params["fields"] = q.fields;
  if (q.total_count) params["totalCount"] = true;
  return {"GET", "records", std::move(params), app, true};
}

ApiCall create_call(int app, const json& record) {
  return {"POST", "record", json{{"app", app}, {"record", to_json_record(record)}}, app, false};
}

ApiCall update_call(int app, const RecordKey& key, const json& record,
                    std::optional<long long> revision) {
  json params{{"app", app}};
  if (!key.id.empty())
    params["id"] = key.id;
  else
    params["updateKey"] = {{"field", key.field}, {"value", key.value}};
  params["record"] = to_json_record(record);
  if (revision) params["revision"] = *revision;
  return {"PUT", "record", std::move(params), app, true};
}

ApiCall upsert_call(int app, const std::vector<UpsertItem>& items) {
  json records = json::array();
  for (const auto& item : items)
    records.push_back({{"updateKey", {{"field", item.key_field}, {"value", item.key_value}}},
                       {"record", to_json_record(item.record)}});
  return {"PUT", "records", json{{"app", app}, {"upsert", true}, {"records", std::move(records)}},
          app, true};
}

ApiCall comment_call(int app, std::string_view id, std::string_view text,
                     const std::vector<Mention>& mentions) {
  json comment{{"text", std::string(text)}};
  if (!mentions.empty()) {
    comment["mentions"] = json::array();
    for (const auto& m : mentions)
      comment["mentions"].push_back({{"code", m.code}, {"type", m.type}});
  }
  return {"POST", "record/comment",
          json{{"app", app}, {"record", std::string(id)}, {"comment", std::move(comment)}}, app,
          false};
}

Client::Client(Connection connection, http::Transport& transport, Sleep sleep)
    : connection_(std::move(connection)), transport_(transport), sleep_(std::move(sleep)) {
  if (!sleep_) sleep_ = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  if (connection_.max_concurrency < 1) connection_.max_concurrency = 1;
  if (connection_.retry.attempts < 1) connection_.retry.attempts = 1;
  while (!connection_.base_url.empty() && connection_.base_url.back() == '/')
    connection_.base_url.pop_back();
}

std::string Client::api_url(std::string_view resource) const {
  std::string url = connection_.base_url;
  if (connection_.guest_space > 0)
    url += "/k/guest/" + std::to_string(connection_.guest_space) + "/v1/";
  else
    url += "/k/v1/";
  url += resource;
  url += ".json";
  return url;
}

http::Request Client::build(const ApiCall& call, bool redacted) const {
  http::Request r;
  r.method = call.method;
  r.timeout = connection_.timeout;
  r.url = api_url(call.resource);
  const Auth& a = connection_.auth;
  const std::string hidden = "[secret]";
  if (!a.api_tokens.empty()) {
    std::string joined;
    for (const auto& t : a.api_tokens) joined += (joined.empty() ? "" : ",") + t;
    r.headers.emplace_back("X-Cybozu-API-Token", redacted ? hidden : joined);
  }
  if (!a.login.empty())
    r.headers.emplace_back("X-Cybozu-Authorization",
                           redacted ? hidden : rules::base64_encode(a.login + ":" + a.password));
  if (!a.basic_user.empty())
    r.headers.emplace_back(
        "Authorization",
        "Basic " +
            (redacted ? hidden : rules::base64_encode(a.basic_user + ":" + a.basic_password)));
  else if (a.oauth && redacted)
    r.headers.emplace_back("Authorization", "Bearer " + hidden);
  // (An OAuth bearer is added by call(): it may need a refresh first.)
  if (call.method == "GET") {
    std::string qs = query_string(call.params);
    std::string url = r.url + (qs.empty() ? "" : "?" + qs);
    if (url.size() <= connection_.max_get_url_bytes) {
      r.url = std::move(url);
    } else {
      // kintone documents this for long GETs: POST with the method in a header, JSON body.
      r.method = "POST";
      r.headers.emplace_back("X-HTTP-Method-Override", "GET");
      r.headers.emplace_back("Content-Type", "application/json");
      r.body = call.params.dump();
    }
  } else {
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = call.params.dump();
  }
  return r;
}

void Client::acquire() {
  std::unique_lock lock(slots_mutex_);
  slots_free_.wait(lock, [&] { return slots_used_ < connection_.max_concurrency; });
  ++slots_used_;
  ++in_flight_;
}

void Client::release() {
  {
    std::lock_guard lock(slots_mutex_);
    --slots_used_;
    --in_flight_;
  }
  slots_free_.notify_one();
}

void Client::count(int app, const std::optional<ApiError>& error) {
  std::lock_guard lock(counters_mutex_);
  AppCounter& c = counters_[app];
  ++c.total;
  std::string day = today_utc();
  if (c.day != day) {
    c.day = day;
    c.today = 0;
  }
  ++c.today;
  if (error) ++failures_[std::string(to_string(error->kind))];
}

std::uint64_t Client::requests_today(int app) const {
  std::lock_guard lock(counters_mutex_);
  auto it = counters_.find(app);
  if (it == counters_.end() || it->second.day != today_utc()) return 0;
  return it->second.today;
}

std::vector<Client::AppUsage> Client::usage() const {
  std::lock_guard lock(counters_mutex_);
  std::string day = today_utc();
  std::vector<AppUsage> out;
  for (const auto& [app, c] : counters_) out.push_back({app, c.total, c.day == day ? c.today : 0});
  return out;
}

std::map<std::string, std::uint64_t> Client::failures() const {
  std::lock_guard lock(counters_mutex_);
  return failures_;
}

Result Client::call(const ApiCall& call, const BeforeSend& before_send) {
  Result result;
  const RetrySettings& retry = connection_.retry;
  bool refreshed = false;
  std::chrono::milliseconds backoff = retry.backoff;
  for (int attempt = 1;; ++attempt) {
    http::Request request = build(call, false);
    if (connection_.auth.oauth && connection_.auth.basic_user.empty()) {
      std::string error;
      auto token = connection_.auth.oauth->access_token(false, error);
      if (!token) {
        result.outcome = {};
        result.outcome.kind = http::OutcomeKind::invalid_request;
        result.outcome.error = "no OAuth access token: " + error;
        result.error = ApiError{0, "oauth", "", result.outcome.error, {}, ErrorClass::final, {}};
        return result;
      }
      request.headers.emplace_back("Authorization", "Bearer " + *token);
    }
    if (before_send && !before_send(build(call, true))) {
      result.outcome = {};
      result.outcome.kind = http::OutcomeKind::invalid_request;
      result.outcome.error = "cancelled before sending";
      result.error = ApiError{0, "cancelled", "", result.outcome.error, {}, ErrorClass::final, {}};
      return result;
    }
    acquire();
    result.outcome = transport_.perform(request);
    release();
    ++result.attempts;
    result.error = parse_error(result.outcome);
    count(call.app, result.error);
    if (!result.error) {
      result.body = json::parse(result.outcome.body, nullptr, false);
      if (result.body.is_discarded()) {
        result.body = json();
        result.error = ApiError{result.outcome.status,
                                "invalid_json",
                                "",
                                "kintone answered 2xx with a body that is not JSON",
                                {},
                                ErrorClass::final,
                                {}};
      }
      return result;
    }
    ApiError& e = *result.error;
    // An expired or revoked access token: refresh once, then send again at once.
    if (e.status == 401 && connection_.auth.oauth && !refreshed) {
      refreshed = true;
      std::string error;
      if (connection_.auth.oauth->access_token(true, error)) {
        --attempt;
        continue;
      }
    }
    bool may_repeat = call.idempotent || nothing_applied(result.outcome, e);
    if (e.kind != ErrorClass::retry || !may_repeat || attempt >= retry.attempts) return result;
    std::chrono::milliseconds wait = backoff;
    if (e.retry_after) wait = std::max<std::chrono::milliseconds>(wait, *e.retry_after);
    wait = std::min(wait, retry.max_backoff);
    sleep_(wait);
    backoff = std::min(backoff * 2, retry.max_backoff);
  }
}

Result Client::get(int app, std::string_view id) {
  return call(get_call(app, id));
}

Result Client::find(int app, const FindQuery& q) {
  return call(find_call(app, q));
}

Result Client::create(int app, const json& record) {
  return call(create_call(app, record));
}

Result Client::update(int app, const RecordKey& key, const json& record,
                      std::optional<long long> revision, const BeforeSend& before_send) {
  Result r = call(update_call(app, key, record, revision), before_send);
  if (r.error_class() != ErrorClass::reread || !revision) return r;
  // Someone changed the record since it was read: take its current revision, once.
  Result current;
  if (!key.id.empty()) {
    current = call(get_call(app, key.id), before_send);
  } else {
    FindQuery q;
    q.where.push_back({key.field, "=", {key.value}});
    q.fields = {"$id", "$revision"};
    q.limit = 1;
    q.total_count = false;
    current = call(find_call(app, q), before_send);
    if (current.ok()) {
      const json& records = current.body["records"];
      current.body = records.empty() ? json() : json{{"record", records[0]}};
    }
  }
  if (!current.ok() || !current.body.contains("record")) return r;
  const json& rev = current.body["record"]["$revision"]["value"];
  long long latest = rev.is_string() ? std::stoll(rev.get<std::string>()) : rev.get<long long>();
  Result again = call(update_call(app, key, record, latest), before_send);
  again.attempts += r.attempts + current.attempts;
  return again;
}

Result Client::upsert(int app, const std::vector<UpsertItem>& items) {
  Result total;
  total.body = {{"records", json::array()}};
  for (std::size_t start = 0; start < items.size(); start += 100) {
    std::vector<UpsertItem> batch(
        items.begin() + static_cast<long>(start),
        items.begin() + static_cast<long>(std::min(items.size(), start + 100)));
    Result r = call(upsert_call(app, batch));
    total.outcome = r.outcome;
    total.attempts += r.attempts;
    if (!r.ok()) {
      total.error = r.error;
      return total;
    }
    if (r.body.contains("records"))
      for (auto& rec : r.body["records"]) total.body["records"].push_back(std::move(rec));
  }
  return total;
}

Result Client::add_comment(int app, std::string_view id, std::string_view text,
                           const std::vector<Mention>& mentions) {
  return call(comment_call(app, id, text, mentions));
}

Result Client::find_all(int app, const std::string& query, const std::vector<std::string>& fields,
                        const std::function<bool(json&& record)>& visit, Paging paging,
                        int page_size) {
  page_size = std::clamp(page_size, 1, kMaxRecordsPerRequest);
  std::vector<std::string> wanted = fields;
  if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), "$id") == wanted.end())
    wanted.push_back("$id");
  Result total;
  std::uint64_t count = 0;
  auto finish = [&](Result&& last) {
    total.outcome = std::move(last.outcome);
    total.error = std::move(last.error);
    total.attempts += last.attempts;
    total.body = {{"count", count}};
    return total;
  };

  if (paging == Paging::cursor) {
    json create{{"app", app}, {"size", page_size}};
    if (!query.empty()) create["query"] = query;
    if (!wanted.empty()) create["fields"] = wanted;
    Result made = call({"POST", "records/cursor", create, app, true});
    if (!made.ok()) return finish(std::move(made));
    total.attempts += made.attempts;
    std::string id = made.body.value("id", "");
    for (;;) {
      Result page = call({"GET", "records/cursor", json{{"id", id}}, app, true});
      if (!page.ok()) {
        call({"DELETE", "records/cursor", json{{"id", id}}, app, true});
        return finish(std::move(page));
      }
      bool more = page.body.value("next", false);
      bool stopped = false;
      for (auto& rec : page.body["records"]) {
        ++count;
        if (!visit(std::move(rec))) {
          stopped = true;
          break;
        }
      }
      if (stopped && more) call({"DELETE", "records/cursor", json{{"id", id}}, app, true});
      if (stopped || !more) return finish(std::move(page));
      total.attempts += page.attempts;
    }
  }

  std::string last = "0";
  for (;;) {
    // `$id > "12"` would compare as text; a record ID is a number in kintone's query language.
    std::string text = "$id > " + last + (query.empty() ? "" : " and (" + query + ")") +
                       " order by $id asc limit " + std::to_string(page_size);
    json params{{"app", app}, {"query", text}};
    if (!wanted.empty()) params["fields"] = wanted;
    Result page = call({"GET", "records", std::move(params), app, true});
    if (!page.ok()) return finish(std::move(page));
    json& records = page.body["records"];
    std::size_t n = records.is_array() ? records.size() : 0;
    for (auto& rec : records) {
      if (rec.contains("$id")) last = param_text(rec["$id"]["value"]);
      ++count;
      if (!visit(std::move(rec))) return finish(std::move(page));
    }
    if (n < static_cast<std::size_t>(page_size)) return finish(std::move(page));
    total.attempts += page.attempts;
  }
}

void Client::metrics(std::string& out) const {
  std::string conn = label(connection_.name);
  std::lock_guard lock(counters_mutex_);
  std::string day = today_utc();
  for (const auto& [app, c] : counters_) {
    std::string labels = "connection=\"" + conn + "\",app=\"" + std::to_string(app) + "\"";
    out += "callbridge_kintone_requests_total{" + labels + "} " + std::to_string(c.total) + "\n";
    out += "callbridge_kintone_requests_today{" + labels + "} " +
           std::to_string(c.day == day ? c.today : 0) + "\n";
  }
  for (const auto& [kind, n] : failures_)
    out += "callbridge_kintone_failures_total{connection=\"" + conn + "\",class=\"" + kind +
           "\"} " + std::to_string(n) + "\n";
  out += "callbridge_kintone_in_flight{connection=\"" + conn + "\"} " +
         std::to_string(in_flight_.load()) + "\n";
  out += "callbridge_kintone_daily_request_limit{connection=\"" + conn + "\"} " +
         std::to_string(connection_.daily_request_limit) + "\n";
}

}  // namespace callbridge::kintone
