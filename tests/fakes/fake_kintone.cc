#include "tests/fakes/fake_kintone.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

namespace callbridge::testing {

namespace {

using ojson = nlohmann::ordered_json;

struct Record {
  std::string id;
  int revision = 1;
  ojson fields = ojson::object();  // code -> {"type", "value"}
};

struct Comment {
  std::string id;
  std::string text;
  ojson mentions = ojson::array();
};

struct App {
  std::string record_number_field;
  std::vector<std::string> tokens;
  std::vector<Record> records;
  std::map<std::string, std::vector<Comment>> comments;
  int next_id = 1;
};

struct KintoneError {
  int status;
  std::string code, message;
  ojson errors;
};

std::string random_id() {
  static std::atomic<unsigned> counter{1};
  return "fake" + std::to_string(counter++);
}

std::string error_body(const KintoneError& e) {
  ojson body;
  body["code"] = e.code;
  body["id"] = random_id();
  body["message"] = e.message;
  if (!e.errors.is_null()) body["errors"] = e.errors;
  return body.dump();
}

std::string decode_base64(const std::string& in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int value = 0, bits = -8;
  for (char c : in) {
    auto pos = chars.find(c);
    if (pos == std::string::npos) break;
    value = (value << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out += static_cast<char>((value >> bits) & 0xFF);
      bits -= 8;
    }
  }
  return out;
}

std::optional<int> as_int(const nlohmann::json& v) {
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) return std::stoi(s);
  }
  return std::nullopt;
}

std::string as_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

// ---- kintone query language: the subset the bridge and its users need ----

struct Token {
  enum Kind { word, string, op, lparen, rparen, comma, end } kind;
  std::string text;
};

std::vector<Token> tokenize(const std::string& q, std::string& error) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < q.size()) {
    char c = q[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    if (c == '(') {
      out.push_back({Token::lparen, "("});
      ++i;
      continue;
    }
    if (c == ')') {
      out.push_back({Token::rparen, ")"});
      ++i;
      continue;
    }
    if (c == ',') {
      out.push_back({Token::comma, ","});
      ++i;
      continue;
    }
    if (c == '"') {
      std::string s;
      ++i;
      bool closed = false;
      while (i < q.size()) {
        if (q[i] == '\\' && i + 1 < q.size()) {
          s += q[i + 1];
          i += 2;
          continue;
        }
        if (q[i] == '"') {
          closed = true;
          ++i;
          break;
        }
        s += q[i++];
      }
      if (!closed) {
        error = "unterminated string";
        return {};
      }
      out.push_back({Token::string, s});
      continue;
    }
    if (c == '=' || c == '!' || c == '<' || c == '>') {
      std::string op(1, c);
      if (i + 1 < q.size() && q[i + 1] == '=') op += '=';
      if (op == "!") {
        error = "unexpected !";
        return {};
      }
      out.push_back({Token::op, op});
      i += op.size();
      continue;
    }
    std::size_t j = i;
    while (j < q.size() && std::string(" \t\r\n()=!<>,\"").find(q[j]) == std::string::npos) ++j;
    out.push_back({Token::word, q.substr(i, j - i)});
    i = j;
  }
  out.push_back({Token::end, ""});
  return out;
}

using Predicate = std::function<bool(const Record&)>;

struct Query {
  Predicate where;
  std::vector<std::pair<std::string, bool>> order;  // field, descending
  int limit = 100, offset = 0;
};

std::string field_value(const Record& r, const std::string& field,
                        const std::string& number_field) {
  if (field == "$id" || field == number_field) return r.id;
  if (field == "$revision") return std::to_string(r.revision);
  if (!r.fields.contains(field)) return "";
  return as_text(r.fields[field]["value"]);
}

int compare(const std::string& a, const std::string& b) {
  bool na = !a.empty() && a.find_first_not_of("-0123456789.") == std::string::npos;
  bool nb = !b.empty() && b.find_first_not_of("-0123456789.") == std::string::npos;
  if (na && nb) {
    double x = std::stod(a), y = std::stod(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a.compare(b);
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::string number_field)
      : t_(std::move(tokens)), number_field_(std::move(number_field)) {}

  std::optional<Query> parse(std::string& error) {
    Query q;
    q.where = [](const Record&) { return true; };
    if (!at_keyword("order") && !at_keyword("limit") && !at_keyword("offset") &&
        peek().kind != Token::end)
      q.where = expr();
    while (error_.empty() && peek().kind != Token::end) {
      if (take_keyword("order")) {
        if (!take_keyword("by")) fail("expected by");
        do {
          Token f = next();
          if (f.kind != Token::word) fail("expected a field after order by");
          bool desc = false;
          if (take_keyword("desc"))
            desc = true;
          else
            take_keyword("asc");
          q.order.emplace_back(f.text, desc);
        } while (error_.empty() && peek().kind == Token::comma && (next(), true));
      } else if (take_keyword("limit")) {
        q.limit = number();
        if (q.limit > 500) fail("limit must be 500 or less");
      } else if (take_keyword("offset")) {
        q.offset = number();
        if (q.offset > 10000) fail("offset must be 10000 or less");
      } else {
        fail("unexpected " + peek().text);
      }
    }
    if (!error_.empty()) {
      error = error_;
      return std::nullopt;
    }
    return q;
  }

 private:
  const Token& peek() const { return t_[pos_]; }
  Token next() { return pos_ < t_.size() - 1 ? t_[pos_++] : t_.back(); }
  bool at_keyword(const char* k) const { return peek().kind == Token::word && peek().text == k; }
  bool take_keyword(const char* k) {
    if (!at_keyword(k)) return false;
    ++pos_;
    return true;
  }
  void fail(const std::string& message) {
    if (error_.empty()) error_ = message;
    pos_ = t_.size() - 1;
  }
  int number() {
    Token n = next();
    if (n.kind != Token::word || n.text.find_first_not_of("0123456789") != std::string::npos ||
        n.text.empty()) {
      fail("expected a number");
      return 0;
    }
    return std::stoi(n.text);
  }
  std::string value() {
    Token v = next();
    if (v.kind == Token::string) return v.text;
    if (v.kind == Token::word && !v.text.empty() &&
        v.text.find_first_not_of("-0123456789.") == std::string::npos)
      return v.text;
    fail("expected a value, got " + v.text);
    return "";
  }
  Predicate expr() {
    Predicate left = term();
    while (error_.empty() && take_keyword("or")) {
      Predicate right = term();
      left = [left, right](const Record& r) { return left(r) || right(r); };
    }
    return left;
  }
  Predicate term() {
    Predicate left = factor();
    while (error_.empty() && take_keyword("and")) {
      Predicate right = factor();
      left = [left, right](const Record& r) { return left(r) && right(r); };
    }
    return left;
  }
  Predicate factor() {
    if (peek().kind == Token::lparen) {
      next();
      Predicate inner = expr();
      if (next().kind != Token::rparen) fail("expected )");
      return inner;
    }
    Token field = next();
    if (field.kind != Token::word) {
      fail("expected a field code");
      return [](const Record&) { return false; };
    }
    std::string f = field.text, nf = number_field_;
    bool negate = take_keyword("not");
    if (take_keyword("in")) {
      if (next().kind != Token::lparen) fail("expected ( after in");
      std::vector<std::string> values;
      do values.push_back(value());
      while (error_.empty() && peek().kind == Token::comma && (next(), true));
      if (next().kind != Token::rparen) fail("expected ) after in values");
      return [f, nf, values, negate](const Record& r) {
        bool found = std::find(values.begin(), values.end(), field_value(r, f, nf)) != values.end();
        return found != negate;
      };
    }
    if (take_keyword("like")) {
      std::string v = value();
      return [f, nf, v, negate](const Record& r) {
        return (field_value(r, f, nf).find(v) != std::string::npos) != negate;
      };
    }
    if (negate) fail("expected in or like after not");
    Token op = next();
    if (op.kind != Token::op) {
      fail("expected an operator after " + f);
      return [](const Record&) { return false; };
    }
    std::string v = value(), o = op.text;
    return [f, nf, v, o](const Record& r) {
      int c = compare(field_value(r, f, nf), v);
      if (o == "=") return c == 0;
      if (o == "!=") return c != 0;
      if (o == "<") return c < 0;
      if (o == ">") return c > 0;
      if (o == "<=") return c <= 0;
      return c >= 0;
    };
  }

  std::vector<Token> t_;
  std::string number_field_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace

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
  std::chrono::milliseconds delay{0};

  ojson render(const App& app, const Record& r, const std::vector<std::string>& fields) const {
    ojson out = ojson::object();
    auto add = [&](const std::string& code) {
      if (code == app.record_number_field)
        out[code] = {{"type", "RECORD_NUMBER"}, {"value", r.id}};
      else if (code == "$id")
        out[code] = {{"type", "__ID__"}, {"value", r.id}};
      else if (code == "$revision")
        out[code] = {{"type", "__REVISION__"}, {"value", std::to_string(r.revision)}};
      else if (r.fields.contains(code))
        out[code] = r.fields[code];
    };
    if (!fields.empty()) {
      for (const auto& f : fields) add(f);
      return out;
    }
    add(app.record_number_field);
    for (const auto& [code, value] : r.fields.items()) out[code] = value;
    add("$revision");
    add("$id");
    return out;
  }

  static ojson normalize_fields(const nlohmann::json& record) {
    ojson fields = ojson::object();
    for (const auto& [code, value] : record.items()) {
      nlohmann::json v = value.is_object() && value.contains("value") ? value["value"] : value;
      std::string type = v.is_array() ? "CHECK_BOX" : "SINGLE_LINE_TEXT";
      fields[code] = {{"type", type},
                      {"value", v.is_string() || v.is_array() ? v : nlohmann::json(as_text(v))}};
    }
    return fields;
  }

  // Authentication, as kintone checks it: tokens belong to apps, passwords to users.
  std::optional<KintoneError> authenticate(const httplib::Request& req, int app) const {
    if (req.has_header("X-Cybozu-Authorization")) {
      std::string decoded = decode_base64(req.get_header_value("X-Cybozu-Authorization"));
      auto colon = decoded.find(':');
      if (colon != std::string::npos) {
        auto it = users.find(decoded.substr(0, colon));
        if (it != users.end() && it->second == decoded.substr(colon + 1)) return std::nullopt;
      }
      return KintoneError{401, "CB_WA01", "ユーザーのパスワード認証に失敗しました。", nullptr};
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
      return KintoneError{403, "GAIA_NO01",
                          "Using this API token, you cannot run the specified API.", nullptr};
    }
    return KintoneError{401, "CB_AU01", "ログインしてください。", nullptr};
  }

  std::string handle(const std::string& method, const std::string& api, const httplib::Request& req,
                     int& status) {
    nlohmann::json body = nlohmann::json::object();
    if (method != "GET" && !req.body.empty()) {
      body = nlohmann::json::parse(req.body, nullptr, false);
      if (body.is_discarded() || !body.is_object()) {
        status = 400;
        return error_body({400, "CB_IJ01", "JSONの形式が正しくありません。", nullptr});
      }
    }
    // Parameters come from the query string for GET, from the body otherwise.
    auto param = [&](const std::string& key) -> nlohmann::json {
      if (method == "GET")
        return req.has_param(key) ? nlohmann::json(req.get_param_value(key)) : nlohmann::json();
      return body.contains(key) ? body[key] : nlohmann::json();
    };
    auto app_id = as_int(param("app"));
    if (!app_id) {
      status = 400;
      return error_body({400,
                         "CB_VA01",
                         "入力内容が正しくありません。",
                         {{"app", {{"messages", {"必須です。"}}}}}});
    }
    auto app_it = apps.find(*app_id);
    if (auto e = authenticate(req, *app_id)) {
      status = e->status;
      return error_body(*e);
    }
    if (app_it == apps.end()) {
      status = 404;
      return error_body({404, "GAIA_AP01",
                         "指定したアプリ（id: " + std::to_string(*app_id) + "）が見つかりません。",
                         nullptr});
    }
    App& app = app_it->second;
    auto find = [&](const std::string& id) -> Record* {
      for (auto& r : app.records)
        if (r.id == id) return &r;
      return nullptr;
    };
    auto not_found = [&](const std::string& id) {
      status = 404;
      return error_body(
          {404, "GAIA_RE01", "指定したレコード（id: " + id + "）が見つかりません。", nullptr});
    };
    auto create = [&](const nlohmann::json& record) -> Record& {
      Record r;
      r.id = std::to_string(app.next_id++);
      r.fields = normalize_fields(record.is_object() ? record : nlohmann::json::object());
      app.records.push_back(std::move(r));
      return app.records.back();
    };
    auto update = [&](const nlohmann::json& item, std::string& error) -> Record* {
      Record* r = nullptr;
      if (item.contains("id")) {
        r = find(as_text(item["id"]));
        if (!r) error = not_found(as_text(item["id"]));
      } else if (item.contains("updateKey")) {
        std::string field = as_text(item["updateKey"]["field"]),
                    value = as_text(item["updateKey"]["value"]);
        for (auto& rec : app.records)
          if (field_value(rec, field, app.record_number_field) == value) r = &rec;
        if (!r) error = not_found(value);
      } else {
        status = 400;
        error = error_body({400,
                            "CB_VA01",
                            "入力内容が正しくありません。",
                            {{"id", {{"messages", {"必須です。"}}}}}});
        return nullptr;
      }
      if (r && item.contains("revision") && as_int(item["revision"]).value_or(-1) != -1 &&
          as_int(item["revision"]) != r->revision) {
        status = 409;
        error = error_body({409, "GAIA_CO02", "リビジョンが一致しません。", nullptr});
        return nullptr;
      }
      if (r) {
        ojson changes = normalize_fields(item.value("record", nlohmann::json::object()));
        for (const auto& [code, value] : changes.items()) r->fields[code] = value;
        ++r->revision;
      }
      return r;
    };

    if (api == "records" && method == "GET") {
      std::vector<std::string> fields;
      nlohmann::json f =
          method == "GET" && req.has_param("fields[0]") ? nlohmann::json::array() : param("fields");
      for (int i = 0; req.has_param("fields[" + std::to_string(i) + "]"); ++i)
        f.push_back(req.get_param_value("fields[" + std::to_string(i) + "]"));
      if (f.is_array())
        for (const auto& x : f) fields.push_back(as_text(x));
      std::string error;
      auto tokens = tokenize(as_text(param("query")), error);
      std::optional<Query> q;
      if (error.empty()) q = Parser(tokens, app.record_number_field).parse(error);
      if (!q) {
        status = 400;
        return error_body({400, "GAIA_IQ11", "クエリ記法が間違っています。" + error, nullptr});
      }
      std::vector<const Record*> matched;
      for (const auto& r : app.records)
        if (q->where(r)) matched.push_back(&r);
      if (q->order.empty()) q->order.emplace_back("$id", true);  // kintone's default order
      std::stable_sort(matched.begin(), matched.end(), [&](const Record* a, const Record* b) {
        for (const auto& [field, desc] : q->order) {
          int c = compare(field_value(*a, field, app.record_number_field),
                          field_value(*b, field, app.record_number_field));
          if (c != 0) return desc ? c > 0 : c < 0;
        }
        return false;
      });
      ojson out;
      out["records"] = ojson::array();
      for (std::size_t i = static_cast<std::size_t>(q->offset);
           i < matched.size() && i < static_cast<std::size_t>(q->offset + q->limit); ++i)
        out["records"].push_back(render(app, *matched[i], fields));
      std::string total = as_text(param("totalCount"));
      out["totalCount"] = total == "true" ? ojson(std::to_string(matched.size())) : ojson(nullptr);
      return out.dump();
    }
    if (api == "records" && method == "POST") {
      ojson out;
      out["ids"] = ojson::array();
      out["revisions"] = ojson::array();
      for (const auto& record : param("records")) {
        Record& r = create(record);
        out["ids"].push_back(r.id);
        out["revisions"].push_back("1");
      }
      return out.dump();
    }
    if (api == "records" && method == "PUT") {
      ojson out;
      out["records"] = ojson::array();
      bool upsert = param("upsert") == true;
      for (const auto& item : param("records")) {
        std::string error;
        Record* r = update(item, error);
        if (!r && upsert && item.contains("updateKey") && status == 200) {
          nlohmann::json record = item.value("record", nlohmann::json::object());
          record[as_text(item["updateKey"]["field"])] = {{"value", item["updateKey"]["value"]}};
          r = &create(record);
          error.clear();
        }
        if (!r) {
          if (status == 200) status = 404;
          return error;
        }
        out["records"].push_back({{"id", r->id}, {"revision", std::to_string(r->revision)}});
      }
      return out.dump();
    }
    if (api == "record" && method == "GET") {
      Record* r = find(as_text(param("id")));
      if (!r) return not_found(as_text(param("id")));
      ojson out;
      out["record"] = render(app, *r, {});
      return out.dump();
    }
    if (api == "record" && method == "POST") {
      Record& r = create(param("record"));
      ojson out;
      out["id"] = r.id;
      out["revision"] = "1";
      return out.dump();
    }
    if (api == "record" && method == "PUT") {
      std::string error;
      Record* r = update(body, error);
      if (!r) {
        if (status == 200) status = 404;
        return error;
      }
      ojson out;
      out["revision"] = std::to_string(r->revision);
      return out.dump();
    }
    if (api == "record/comment" && method == "POST") {
      std::string id = as_text(param("record"));
      if (!find(id)) return not_found(id);
      auto& list = app.comments[id];
      Comment c;
      c.id = std::to_string(list.size() + 1);
      nlohmann::json comment = param("comment");
      c.text = comment.is_object() ? as_text(comment.value("text", nlohmann::json(""))) : "";
      if (comment.is_object() && comment.contains("mentions")) c.mentions = comment["mentions"];
      list.push_back(c);
      ojson out;
      out["id"] = c.id;
      return out.dump();
    }
    if (api == "record/comments" && method == "GET") {
      std::string id = as_text(param("record"));
      if (!find(id)) return not_found(id);
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
      return out.dump();
    }
    status = 404;
    return error_body({404, "CB_NO02", "No such API.", nullptr});
  }
};

FakeKintone::FakeKintone(int port) : impl_(std::make_unique<Impl>()) {
  auto& s = impl_->server;
  s.new_task_queue = [] { return new httplib::ThreadPool(16); };
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(1000);
  s.set_keep_alive_timeout(5);
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    std::chrono::milliseconds delay;
    {
      std::lock_guard lock(impl_->mutex);
      KintoneRequestLog entry{req.method, req.path, {}, req.body, {}};
      for (const auto& [k, v] : req.headers) {
        std::string lower = k;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        entry.headers.emplace(lower, v);
      }
      for (const auto& [k, v] : req.params) entry.params.emplace(k, v);
      impl_->log.push_back(std::move(entry));
      delay = impl_->delay;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard lock(impl_->mutex);
    if (impl_->fail_count > 0) {
      --impl_->fail_count;
      res.status = impl_->fail_status;
      res.set_content(impl_->fail_body, "application/json; charset=utf-8");
      return;
    }
    std::string method = req.method;
    if (method == "POST" && req.get_header_value("X-HTTP-Method-Override") == "GET")
      method = "GET-BODY";
    std::string api = req.matches[2];
    int status = 200;
    std::string body;
    if (method == "GET-BODY") {
      // GET semantics with parameters in the JSON body, as kintone allows.
      httplib::Request as_get = req;
      as_get.method = "GET";
      auto json = nlohmann::json::parse(req.body, nullptr, false);
      if (!json.is_object()) {
        status = 400;
        body = error_body({400, "CB_IJ01", "JSONの形式が正しくありません。", nullptr});
      } else {
        as_get.params.clear();
        for (const auto& [k, v] : json.items()) {
          if (k == "fields" && v.is_array()) {
            for (std::size_t i = 0; i < v.size(); ++i)
              as_get.params.emplace("fields[" + std::to_string(i) + "]", as_text(v[i]));
          } else {
            as_get.params.emplace(k, as_text(v));
          }
        }
        body = impl_->handle("GET", api, as_get, status);
      }
    } else {
      body = impl_->handle(method, api, req, status);
    }
    res.status = status;
    res.set_content(body, "application/json; charset=utf-8");
  };
  const char* pattern =
      R"(/k/(guest/\d+/)?v1/(records|record|record/comment|record/comments)\.json)";
  s.Get(pattern, handler);
  s.Post(pattern, handler);
  s.Put(pattern, handler);
  if (port == 0)
    impl_->port = s.bind_to_any_port("127.0.0.1");
  else
    impl_->port = s.bind_to_port("127.0.0.1", port) ? port : -1;
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  while (!impl_->server.is_running()) std::this_thread::yield();
}

FakeKintone::~FakeKintone() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int FakeKintone::port() const {
  return impl_->port;
}
std::string FakeKintone::base_url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port);
}

void FakeKintone::add_app(int app, std::string record_number_field) {
  std::lock_guard lock(impl_->mutex);
  impl_->apps[app].record_number_field = std::move(record_number_field);
}

void FakeKintone::add_api_token(int app, std::string token) {
  std::lock_guard lock(impl_->mutex);
  impl_->apps[app].tokens.push_back(std::move(token));
}

void FakeKintone::add_user(std::string login, std::string password) {
  std::lock_guard lock(impl_->mutex);
  impl_->users[std::move(login)] = std::move(password);
}

std::string FakeKintone::insert_record(int app, const nlohmann::json& fields) {
  std::lock_guard lock(impl_->mutex);
  App& a = impl_->apps[app];
  Record r;
  r.id = std::to_string(a.next_id++);
  r.fields = Impl::normalize_fields(fields);
  a.records.push_back(r);
  return r.id;
}

std::vector<nlohmann::json> FakeKintone::records(int app) const {
  std::lock_guard lock(impl_->mutex);
  std::vector<nlohmann::json> out;
  auto it = impl_->apps.find(app);
  if (it == impl_->apps.end()) return out;
  for (const auto& r : it->second.records)
    out.push_back(nlohmann::json::parse(impl_->render(it->second, r, {}).dump()));
  return out;
}

std::vector<nlohmann::json> FakeKintone::comments(int app, const std::string& record_id) const {
  std::lock_guard lock(impl_->mutex);
  std::vector<nlohmann::json> out;
  auto it = impl_->apps.find(app);
  if (it == impl_->apps.end()) return out;
  auto c = it->second.comments.find(record_id);
  if (c == it->second.comments.end()) return out;
  for (auto i = c->second.rbegin(); i != c->second.rend(); ++i)
    out.push_back({{"id", i->id},
                   {"text", i->text},
                   {"mentions", nlohmann::json::parse(i->mentions.dump())}});
  return out;
}

std::vector<KintoneRequestLog> FakeKintone::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->log;
}

void FakeKintone::fail_next(int count, int status, std::string body) {
  std::lock_guard lock(impl_->mutex);
  impl_->fail_count = count;
  impl_->fail_status = status;
  impl_->fail_body = std::move(body);
}

void FakeKintone::set_response_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(impl_->mutex);
  impl_->delay = delay;
}

}  // namespace callbridge::testing
