// The fake kintone's REST API and OAuth endpoints: authentication as kintone checks it, each
// API's parameters and errors, cursors, and the authorization code grant.
#include <algorithm>

#include "tests/fakes/fake_kintone_server.h"

namespace callbridge::testing {

bool FakeKintone::Impl::has_scope(const std::string& granted, const std::string& wanted) {
  std::size_t start = 0;
  while (start <= granted.size()) {
    std::size_t space = granted.find(' ', start);
    if (granted.substr(start, space == std::string::npos ? std::string::npos : space - start) ==
        wanted)
      return true;
    if (space == std::string::npos) break;
    start = space + 1;
  }
  return false;
}

std::optional<KintoneError> FakeKintone::Impl::authenticate(const httplib::Request& req, int app,
                                                            bool write) const {
  if (req.has_header("X-Cybozu-Authorization")) {
    std::string decoded = decode_base64(req.get_header_value("X-Cybozu-Authorization"));
    auto colon = decoded.find(':');
    if (colon != std::string::npos) {
      auto it = users.find(decoded.substr(0, colon));
      if (it != users.end() && it->second == decoded.substr(colon + 1)) return std::nullopt;
    }
    return KintoneError{401, "CB_WA01", "ユーザーのパスワード認証に失敗しました。", nullptr};
  }
  std::string authorization = req.get_header_value("Authorization");
  if (authorization.rfind("Bearer ", 0) == 0) {
    auto it = access_tokens.find(authorization.substr(7));
    if (it == access_tokens.end() || it->second.revoked || now() >= it->second.expires_at)
      return KintoneError{401, "CB_AU01", "ログインしてください。", nullptr};
    if (!has_scope(it->second.scope, write ? "k:app_record:write" : "k:app_record:read"))
      return KintoneError{403, "CB_NO02", "権限がありません。", nullptr};
    return std::nullopt;
  }
  if (req.has_header("X-Cybozu-API-Token")) {
    std::string all = req.get_header_value("X-Cybozu-API-Token");
    bool known = false;
    std::size_t start = 0;
    while (start <= all.size()) {
      std::size_t comma = all.find(',', start);
      std::string token =
          all.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      for (const auto& [id, a] : apps) {
        if (std::find(a.tokens.begin(), a.tokens.end(), token) == a.tokens.end()) continue;
        known = true;
        if (id == app) return std::nullopt;
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (!known) return KintoneError{401, "GAIA_IA02", "指定したAPIトークンが不正です。", nullptr};
    return KintoneError{403, "GAIA_NO01", "Using this API token, you cannot run the specified API.",
                        nullptr};
  }
  return KintoneError{401, "CB_AU01", "ログインしてください。", nullptr};
}

Answer FakeKintone::Impl::refuse(const httplib::Request& req, const KintoneError& e) const {
  Answer a = answer(e);
  if (e.status == 401 && req.get_header_value("Authorization").rfind("Bearer ", 0) == 0)
    a.headers.emplace("WWW-Authenticate", R"(Bearer error="invalid_token")");
  return a;
}

std::optional<KintoneError> FakeKintone::Impl::check_path(const App& app,
                                                          std::optional<int> path_space) {
  if (!app.guest_space) return std::nullopt;
  if (*app.guest_space != 0 && !path_space)
    return KintoneError{400, "GAIA_IL23",
                        "ゲストスペース内のアプリを操作する場合は、リクエストの送信先を「/k/"
                        "guest/（ゲストスペースのID）/v1/...」にします。",
                        nullptr};
  if (path_space.value_or(0) != *app.guest_space)
    return KintoneError{403, "CB_NO02", "権限がありません。", nullptr};
  return std::nullopt;
}

std::optional<int> FakeKintone::Impl::app_of(const httplib::Request& req,
                                             const std::string& api) const {
  nlohmann::json body = nlohmann::json::object();
  if (!req.body.empty()) body = nlohmann::json::parse(req.body, nullptr, false);
  auto get = [&](const std::string& key) -> nlohmann::json {
    if (req.has_param(key)) return req.get_param_value(key);
    if (body.is_object() && body.contains(key)) return body[key];
    return nullptr;
  };
  if (api == "records/cursor") {
    auto it = cursors.find(as_text(get("id")));
    if (it != cursors.end()) return it->second.app;
  }
  return as_int(get("app"));
}

Answer FakeKintone::Impl::handle(const std::string& method, const std::string& api,
                                 const httplib::Request& req, std::optional<int> path_space) {
  nlohmann::json body = nlohmann::json::object();
  if (method != "GET" && !req.body.empty()) {
    body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return answer({400, "CB_IJ01", "JSONの形式が正しくありません。", nullptr});
  }
  // Parameters come from the query string for GET, from the body otherwise.
  auto param = [&](const std::string& key) -> nlohmann::json {
    if (method == "GET")
      return req.has_param(key) ? nlohmann::json(req.get_param_value(key)) : nlohmann::json();
    if (body.contains(key)) return body[key];
    if (method == "DELETE" && req.has_param(key)) return req.get_param_value(key);
    return nlohmann::json();
  };
  if (api == "records/cursor" && method != "POST")
    return cursor_step(method, req, param, path_space);

  auto app_id = as_int(param("app"));
  if (!app_id) return answer(invalid_input({{"app", {{"messages", {"必須です。"}}}}}));
  auto app_it = apps.find(*app_id);
  bool write = method != "GET" && api != "records/cursor";
  if (auto e = authenticate(req, *app_id, write)) return refuse(req, *e);
  if (app_it == apps.end())
    return answer({404, "GAIA_AP01",
                   "指定したアプリ（id: " + std::to_string(*app_id) + "）が見つかりません。",
                   nullptr});
  App& app = app_it->second;
  if (auto e = check_path(app, path_space)) return answer(*e);
  auto not_found = [&](const std::string& id) {
    return answer(
        {404, "GAIA_RE01", "指定したレコード（id: " + id + "）が見つかりません。", nullptr});
  };
  auto requested_fields = [&] {
    std::vector<std::string> fields;
    nlohmann::json f =
        method == "GET" && req.has_param("fields[0]") ? nlohmann::json::array() : param("fields");
    for (int i = 0; method == "GET" && req.has_param("fields[" + std::to_string(i) + "]"); ++i)
      f.push_back(req.get_param_value("fields[" + std::to_string(i) + "]"));
    if (f.is_array())
      for (const auto& x : f) fields.push_back(as_text(x));
    return fields;
  };
  // The record an update names by `id` or `updateKey`, or the error to answer.
  struct Target {
    std::optional<std::size_t> pos;
    std::optional<Answer> error;
  };
  auto target = [&](const nlohmann::json& item, bool upsert) -> Target {
    std::optional<std::size_t> pos;
    if (item.contains("id")) {
      pos = find(app, as_text(item["id"]));
      if (!pos && !upsert) return {std::nullopt, not_found(as_text(item["id"]))};
    } else if (item.contains("updateKey") && item["updateKey"].is_object()) {
      std::string field = as_text(item["updateKey"].value("field", nlohmann::json(""))),
                  value = as_text(item["updateKey"].value("value", nlohmann::json("")));
      pos = find_by_key(app, field, value);
      if (!pos && !upsert) return {std::nullopt, not_found(value)};
    } else {
      return {std::nullopt, answer(invalid_input({{"id", {{"messages", {"必須です。"}}}}}))};
    }
    if (pos && item.contains("revision") && as_int(item["revision"]).value_or(-1) != -1 &&
        as_int(item["revision"]) != app.records[*pos].revision)
      return {std::nullopt, answer({409, "GAIA_CO02", "リビジョンが一致しません。", nullptr})};
    return {pos, std::nullopt};
  };

  if (api == "records" && method == "GET") {
    auto fields = requested_fields();
    QueryError error;
    auto q = parse_query(app, as_text(param("query")), error);
    if (!q) return answer(query_error(error));
    bool want_total = as_text(param("totalCount")) == "true";
    std::size_t total = 0;
    auto rows = select(app, *q, static_cast<std::size_t>(q->offset + q->limit),
                       want_total ? &total : nullptr);
    std::string out =
        render_list(app, rows, static_cast<std::size_t>(q->offset), rows.size(), fields);
    out += R"(,"totalCount":)";
    out += want_total ? ojson(std::to_string(total)).dump() : "null";
    return {200, out + "}", {}};
  }
  if (api == "records" && method == "POST") {
    nlohmann::json records = param("records");
    if (records.is_array() && records.size() > kMaxBulkRecords)
      return answer(invalid_input(
          {{"records", {{"messages", {"一度に100件までのレコードを追加できます。"}}}}}));
    ojson out;
    out["ids"] = ojson::array();
    out["revisions"] = ojson::array();
    for (const auto& record : records) {
      const Record& r = app.records[create(app, record)];
      out["ids"].push_back(r.id);
      out["revisions"].push_back("1");
    }
    return {200, out.dump(), {}};
  }
  if (api == "records" && method == "PUT") {
    nlohmann::json items = param("records");
    if (items.is_array() && items.size() > kMaxBulkRecords)
      return answer(invalid_input(
          {{"records", {{"messages", {"一度に100件までのレコードを更新できます。"}}}}}));
    bool upsert = param("upsert") == true;
    // All or nothing, like kintone: check every item before changing any.
    for (const auto& item : items)
      if (auto t = target(item, upsert); t.error) return *t.error;
    ojson out;
    out["records"] = ojson::array();
    for (const auto& item : items) {
      std::optional<std::size_t> pos = target(item, true).pos;
      const char* operation = "UPDATE";
      if (pos) {
        update(app, *pos, item.value("record", nlohmann::json::object()));
      } else {
        nlohmann::json record = item.value("record", nlohmann::json::object());
        if (!record.is_object()) record = nlohmann::json::object();
        if (item.contains("updateKey"))
          record[as_text(item["updateKey"].value("field", nlohmann::json("")))] = {
              {"value", item["updateKey"].value("value", nlohmann::json(""))}};
        pos = create(app, record);
        operation = "INSERT";
      }
      const Record& r = app.records[*pos];
      ojson entry = {{"id", r.id}, {"revision", std::to_string(r.revision)}};
      if (upsert) entry["operation"] = operation;
      out["records"].push_back(std::move(entry));
    }
    return {200, out.dump(), {}};
  }
  if (api == "record" && method == "GET") {
    auto pos = find(app, as_text(param("id")));
    if (!pos) return not_found(as_text(param("id")));
    ojson out;
    out["record"] = render(app, app.records[*pos], {});
    return {200, out.dump(), {}};
  }
  if (api == "record" && method == "POST") {
    const Record& r = app.records[create(app, param("record"))];
    ojson out;
    out["id"] = r.id;
    out["revision"] = "1";
    return {200, out.dump(), {}};
  }
  if (api == "record" && method == "PUT") {
    Target t = target(body, false);
    if (t.error) return *t.error;
    update(app, *t.pos, body.value("record", nlohmann::json::object()));
    ojson out;
    out["revision"] = std::to_string(app.records[*t.pos].revision);
    return {200, out.dump(), {}};
  }
  if (api == "record/comment" && method == "POST") {
    std::string id = as_text(param("record"));
    if (!find(app, id)) return not_found(id);
    nlohmann::json comment = param("comment");
    Comment c;
    c.text = comment.is_object() ? as_text(comment.value("text", nlohmann::json(""))) : "";
    if (comment.is_object() && comment.contains("mentions")) {
      const auto& mentions = comment["mentions"];
      for (std::size_t i = 0; mentions.is_array() && i < mentions.size(); ++i) {
        const auto& m = mentions[i];
        std::string type = m.is_object() && m.contains("type") ? as_text(m["type"]) : "";
        if (type != "USER" && type != "GROUP" && type != "ORGANIZATION")
          return answer(invalid_input(
              {{"comment.mentions[" + std::to_string(i) + "].type",
                {{"messages", {"USER、GROUP、ORGANIZATIONのいずれかを指定してください。"}}}}}));
      }
      c.mentions = comment["mentions"];
    }
    auto& list = app.comments[id];
    c.id = std::to_string(list.size() + 1);
    list.push_back(c);
    ojson out;
    out["id"] = c.id;
    return {200, out.dump(), {}};
  }
  if (api == "record/comments" && method == "GET") {
    std::string id = as_text(param("record"));
    if (!find(app, id)) return not_found(id);
    ojson out;
    out["comments"] = ojson::array();
    auto& list = app.comments[id];
    for (auto it = list.rbegin(); it != list.rend(); ++it)
      out["comments"].push_back({{"id", it->id},
                                 {"text", it->text},
                                 {"createdAt", "2026-11-22T00:00:00Z"},
                                 {"creator", {{"code", "callbridge"}, {"name", "callbridge"}}},
                                 {"mentions", it->mentions}});
    out["older"] = false;
    out["newer"] = false;
    return {200, out.dump(), {}};
  }
  if (api == "records/cursor" && method == "POST") {
    auto size = param("size").is_null() ? std::optional<int>(100) : as_int(param("size"));
    if (!size || *size < 1 || *size > kMaxCursorSize)
      return answer(
          invalid_input({{"size", {{"messages", {"1以上500以下の値を指定してください。"}}}}}));
    QueryError error;
    auto q = parse_query(app, as_text(param("query")), error);
    if (!q) return answer(query_error(error));
    if (q->has_limit || q->has_offset)
      return answer(invalid_input(
          {{"query", {{"messages", {"カーソルのクエリにはlimitとoffsetを指定できません。"}}}}}));
    if (cursors.size() >= kMaxOpenCursors)
      return answer({429, "GAIA_TM12",
                     "作成できるカーソルの上限に達しているため、カーソルを作成できません。"
                     "不要なカーソルを削除するか、しばらく経ってから再実行してください。",
                     nullptr});
    Cursor c;
    c.app = *app_id;
    c.size = static_cast<std::size_t>(*size);
    c.fields = requested_fields();
    c.rows = select(app, *q, std::numeric_limits<std::size_t>::max(), nullptr);
    std::string id = random_uuid();
    ojson out;
    out["id"] = id;
    out["totalCount"] = std::to_string(c.rows.size());
    cursors.emplace(id, std::move(c));
    return {200, out.dump(), {}};
  }
  return answer({404, "CB_NO02", "No such API.", nullptr});
}

template <typename Param>
Answer FakeKintone::Impl::cursor_step(const std::string& method, const httplib::Request& req,
                                      Param& param, std::optional<int> path_space) {
  std::string id = as_text(param("id"));
  auto it = cursors.find(id);
  if (it == cursors.end()) {
    bool credentials = req.has_header("X-Cybozu-Authorization") ||
                       req.has_header("X-Cybozu-API-Token") ||
                       req.get_header_value("Authorization").rfind("Bearer ", 0) == 0;
    if (!credentials) return answer({401, "CB_AU01", "ログインしてください。", nullptr});
    if (id.empty()) return answer(invalid_input({{"id", {{"messages", {"必須です。"}}}}}));
    return answer({404, "GAIA_CN01", "指定したカーソルは存在しないか、既に有効期限が切れています。",
                   nullptr});
  }
  Cursor& c = it->second;
  if (auto e = authenticate(req, c.app, false)) return refuse(req, *e);
  const App& app = apps.at(c.app);
  if (auto e = check_path(app, path_space)) return answer(*e);
  if (method == "DELETE") {
    cursors.erase(it);
    return {200, "{}", {}};
  }
  if (method != "GET") return answer({404, "CB_NO02", "No such API.", nullptr});
  std::size_t from = c.next;
  c.next = std::min(c.rows.size(), c.next + c.size);
  std::string out = render_list(app, c.rows, from, c.next, c.fields);
  bool more = c.next < c.rows.size();
  out += more ? R"(,"next":true})" : R"(,"next":false})";
  if (!more) cursors.erase(it);  // kintone frees a cursor once it is read to the end
  return {200, out, {}};
}

Answer FakeKintone::Impl::oauth_error(int status, const std::string& error,
                                      const std::string& description) {
  ojson body;
  body["error"] = error;
  body["error_description"] = description;
  return {status, body.dump(), {{"Cache-Control", "no-store"}, {"Pragma", "no-cache"}}};
}

Answer FakeKintone::Impl::authorize(const httplib::Request& req) {
  std::string client_id = req.get_param_value("client_id"),
              redirect_uri = req.get_param_value("redirect_uri"),
              state = req.get_param_value("state"), scope = req.get_param_value("scope");
  auto client = oauth_clients.find(client_id);
  if (client == oauth_clients.end()) return oauth_error(400, "invalid_client", "unknown client_id");
  // An unregistered redirect URI is never redirected to.
  if (redirect_uri != client->second.redirect_uri)
    return oauth_error(400, "invalid_request", "redirect_uri does not match the client's");
  auto redirect = [&](const std::string& query) {
    std::string location =
        redirect_uri + (redirect_uri.find('?') == std::string::npos ? "?" : "&") + query;
    if (req.has_param("state")) location += "&state=" + percent_encode(state);
    return Answer{302, "", {{"Location", location}}};
  };
  if (req.get_param_value("response_type") != "code")
    return redirect("error=unsupported_response_type");
  static const std::set<std::string> known = {"k:app_record:read",   "k:app_record:write",
                                              "k:app_settings:read", "k:app_settings:write",
                                              "k:file:read",         "k:file:write"};
  std::size_t start = 0, scopes = 0;
  while (start < scope.size()) {
    std::size_t space = scope.find(' ', start);
    std::string one =
        scope.substr(start, space == std::string::npos ? std::string::npos : space - start);
    if (!one.empty() && !known.count(one)) return redirect("error=invalid_scope");
    scopes += !one.empty();
    if (space == std::string::npos) break;
    start = space + 1;
  }
  if (scopes == 0) return redirect("error=invalid_scope");
  std::string code = random_hex(32);
  oauth_codes[code] = {client_id, redirect_uri, scope};
  return redirect("code=" + percent_encode(code));
}

Answer FakeKintone::Impl::issue_token(const httplib::Request& req) {
  ++token_request_count;
  auto form = parse_form(req.body);
  auto field = [&](const std::string& key) {
    auto it = form.find(key);
    return it == form.end() ? std::string() : it->second;
  };
  // Client credentials: HTTP Basic authentication, or the client_id/client_secret fields.
  std::string client_id = field("client_id"), secret = field("client_secret");
  std::string authorization = req.get_header_value("Authorization");
  if (authorization.rfind("Basic ", 0) == 0) {
    std::string decoded = decode_base64(authorization.substr(6));
    auto colon = decoded.find(':');
    if (colon != std::string::npos) {
      client_id = percent_decode(decoded.substr(0, colon));
      secret = percent_decode(decoded.substr(colon + 1));
    }
  }
  auto client = oauth_clients.find(client_id);
  if (client == oauth_clients.end() || client->second.secret != secret) {
    Answer a = oauth_error(401, "invalid_client", "client authentication failed");
    a.headers.emplace("WWW-Authenticate", R"(Basic realm="oauth2")");
    return a;
  }
  std::string grant = field("grant_type"), scope, refresh;
  if (grant == "authorization_code") {
    auto code = oauth_codes.find(field("code"));
    if (code == oauth_codes.end() || code->second.client_id != client_id)
      return oauth_error(400, "invalid_grant", "unknown or used authorization code");
    if (code->second.redirect_uri != field("redirect_uri"))
      return oauth_error(400, "invalid_grant", "redirect_uri does not match");
    scope = code->second.scope;
    oauth_codes.erase(code);  // single use
    refresh = random_hex(40);
    refresh_tokens[refresh] = {client_id, scope};
  } else if (grant == "refresh_token") {
    auto it = refresh_tokens.find(field("refresh_token"));
    if (it == refresh_tokens.end() || it->second.client_id != client_id)
      return oauth_error(400, "invalid_grant", "unknown refresh token");
    scope = it->second.scope;
  } else {
    return oauth_error(400, "unsupported_grant_type",
                       "grant_type must be authorization_code or refresh_token");
  }
  std::string access = random_hex(40);
  access_tokens[access] = {client_id, scope, now() + token_lifetime.count(), false};
  ojson out;
  out["access_token"] = access;
  out["token_type"] = "Bearer";
  if (!refresh.empty()) out["refresh_token"] = refresh;  // a refresh keeps the refresh token
  out["expires_in"] = token_lifetime.count();
  out["scope"] = scope;
  return {200, out.dump(), {{"Cache-Control", "no-store"}, {"Pragma", "no-cache"}}};
}

}  // namespace callbridge::testing
