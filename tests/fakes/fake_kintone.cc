#include "tests/fakes/fake_kintone.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace callbridge::testing {

namespace {

using ojson = nlohmann::ordered_json;

// kintone's default codes of the two system time fields every app has.
const std::string kCreatedTime = "作成日時";
const std::string kUpdatedTime = "更新日時";

constexpr std::size_t kMaxBulkRecords = 100;  // POST/PUT records.json
constexpr std::size_t kMaxOpenCursors = 10;   // per domain
constexpr int kMaxCursorSize = 500;

struct Record {
  std::string id;
  long long number = 0;  // id as a number: records stay in ascending order of it
  int revision = 1;
  ojson fields = ojson::object();      // code -> {"type", "value"}
  long long created = 0, updated = 0;  // seconds since the epoch, whole minutes
  // `fields` as JSON members (,"code":{...}...), rendered on first use: list answers stay fast.
  mutable std::optional<std::string> fields_json;
};

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

std::string random_id() {
  static std::atomic<unsigned> counter{1};
  return "fake" + std::to_string(counter++);
}

std::string random_hex(std::size_t length) {
  static std::mutex mutex;
  static std::mt19937_64 engine{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::lock_guard lock(mutex);
  std::string out;
  for (std::size_t i = 0; i < length; ++i) out += digits[engine() % 16];
  return out;
}

std::string random_uuid() {
  std::string h = random_hex(32);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string error_body(const KintoneError& e) {
  ojson body;
  body["code"] = e.code;
  body["id"] = random_id();
  body["message"] = e.message;
  if (!e.errors.is_null()) body["errors"] = e.errors;
  return body.dump();
}

Answer answer(const KintoneError& e) {
  return {e.status, error_body(e), {}};
}

KintoneError invalid_input(ojson errors) {
  return {400, "CB_VA01", "入力内容が正しくありません。", std::move(errors)};
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

std::string percent_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size() &&
               std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

std::string percent_encode(std::string_view in) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

// application/x-www-form-urlencoded, as OAuth token requests send it.
std::map<std::string, std::string> parse_form(std::string_view body) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t amp = body.find('&', start);
    std::string_view pair =
        body.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    if (!pair.empty()) {
      std::size_t eq = pair.find('=');
      out.emplace(percent_decode(pair.substr(0, eq)),
                  eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

std::optional<int> as_int(const nlohmann::json& v) {
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (!s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos)
      return std::stoi(s);
  }
  return std::nullopt;
}

std::string as_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

// A number as the query language compares it: digits, '-' and '.' only.
std::optional<double> as_number(std::string_view s) {
  if (s.empty() || s.find_first_not_of("-0123456789.") != std::string_view::npos)
    return std::nullopt;
  std::string copy(s);
  char* end = nullptr;
  double d = std::strtod(copy.c_str(), &end);
  if (end == copy.c_str()) return std::nullopt;
  return d;
}

// Compact JSON exactly as ordered_json::dump() writes it, without a serializer per call:
// list answers of hundreds of records stay cheap in sanitizer builds.
void append_json_string(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_json(std::string& out, const ojson& v) {
  if (v.is_string()) {
    append_json_string(out, v.get_ref<const std::string&>());
  } else if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, value] : v.items()) {
      if (!first) out += ',';
      first = false;
      append_json_string(out, key);
      out += ':';
      append_json(out, value);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) out += ',';
      append_json(out, v[i]);
    }
    out += ']';
  } else {
    out += v.dump();
  }
}

// ---- time, in kintone's format: 2026-11-22T10:15:00Z ----

long long floor_div(long long a, long long b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

long long days_from_civil(long long y, long long m, long long d) {
  y -= m <= 2;
  const long long era = floor_div(y, 400);
  const long long yoe = y - era * 400;
  const long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(long long z, long long& y, long long& m, long long& d) {
  z += 719468;
  const long long era = floor_div(z, 146097);
  const long long doe = z - era * 146097;
  const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const long long mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = yoe + era * 400 + (m <= 2);
}

std::string format_time(long long seconds) {
  long long day = floor_div(seconds, 86400), rest = seconds - day * 86400, y, m, d;
  civil_from_days(day, y, m, d);
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", y, m, d,
                rest / 3600, rest / 60 % 60, rest % 60);
  return buffer;
}

std::string format_date(long long seconds) {
  return format_time(seconds).substr(0, 10);
}

struct TimeValue {
  long long seconds;
  bool whole_day;  // "2026-11-22": the query compares against the whole (UTC) day
};

// 2026-11-22, 2026-11-22T10:15Z, 2026-11-22T10:15:00Z, ...:00.000Z, ...+09:00
std::optional<TimeValue> parse_time(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&](std::size_t n) -> std::optional<long long> {
    if (i + n > s.size()) return std::nullopt;
    long long v = 0;
    for (std::size_t k = 0; k < n; ++k) {
      char c = s[i + k];
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    i += n;
    return v;
  };
  auto take = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  auto y = digits(4);
  if (!y || !take('-')) return std::nullopt;
  auto mo = digits(2);
  if (!mo || !take('-')) return std::nullopt;
  auto d = digits(2);
  if (!d || *mo < 1 || *mo > 12 || *d < 1 || *d > 31) return std::nullopt;
  long long day_start = days_from_civil(*y, *mo, *d) * 86400;
  if (i == s.size()) return TimeValue{day_start, true};
  if (!take('T')) return std::nullopt;
  auto h = digits(2);
  if (!h || !take(':')) return std::nullopt;
  auto mi = digits(2);
  if (!mi) return std::nullopt;
  long long sec = 0;
  if (take(':')) {
    auto v = digits(2);
    if (!v) return std::nullopt;
    sec = *v;
    if (take('.'))
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  }
  long long offset = 0;
  if (take('Z')) {
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    long long sign = s[i] == '-' ? -1 : 1;
    ++i;
    auto oh = digits(2);
    if (!oh) return std::nullopt;
    take(':');
    auto om = digits(2);
    if (!om) return std::nullopt;
    offset = sign * (*oh * 3600 + *om * 60);
  }
  if (i != s.size() || *h > 23 || *mi > 59 || sec > 59) return std::nullopt;
  return TimeValue{day_start + *h * 3600 + *mi * 60 + sec - offset, false};
}

int compare_time(long long t, const TimeValue& v) {
  if (!v.whole_day) return t < v.seconds ? -1 : t > v.seconds ? 1 : 0;
  return t < v.seconds ? -1 : t >= v.seconds + 86400 ? 1 : 0;
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

// How a field compares: IDs and revisions as numbers, the system times as times.
enum class FieldKind { id, revision, created, updated, text };

FieldKind kind_of(const std::string& field, const std::string& number_field) {
  if (field == "$id" || field == number_field) return FieldKind::id;
  if (field == "$revision") return FieldKind::revision;
  if (field == kCreatedTime) return FieldKind::created;
  if (field == kUpdatedTime) return FieldKind::updated;
  return FieldKind::text;
}

struct Condition {
  std::string field;
  FieldKind kind = FieldKind::text;
  std::string op;  // = != < > <= >= in "not in" like "not like"
  std::vector<std::string> values;
  std::optional<double> number;   // values[0], when it is a number
  std::optional<TimeValue> time;  // values[0], when it is a date or a time
};

struct Expr {
  enum Type { leaf, all, any } type = all;  // all: and (no kids: every record), any: or
  Condition condition;
  std::vector<Expr> kids;
};

struct Query {
  Expr where;
  std::vector<std::pair<std::string, bool>> order;  // field, descending
  int limit = 100, offset = 0;
  bool has_limit = false, has_offset = false;
};

struct QueryError {
  std::string code, detail;
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::string number_field, long long now)
      : t_(std::move(tokens)), number_field_(std::move(number_field)), now_(now) {}

  std::optional<Query> parse(QueryError& error) {
    Query q;
    if (!at_keyword("order") && !at_keyword("limit") && !at_keyword("offset") &&
        peek().kind != Token::end)
      q.where = expr();
    while (error_.detail.empty() && peek().kind != Token::end) {
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
        } while (error_.detail.empty() && peek().kind == Token::comma && (next(), true));
      } else if (take_keyword("limit")) {
        q.limit = number();
        q.has_limit = true;
        if (q.limit > 500) fail("limit には 500 以下の値を指定してください。", "GAIA_QU01");
      } else if (take_keyword("offset")) {
        q.offset = number();
        q.has_offset = true;
        if (q.offset > 10000) fail("offset には 10,000 以下の値を指定してください。", "GAIA_QU02");
      } else {
        fail("unexpected " + peek().text);
      }
    }
    if (!error_.detail.empty()) {
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
  void fail(const std::string& message, const std::string& code = "GAIA_IQ11") {
    if (error_.detail.empty()) error_ = {code, message};
    pos_ = t_.size() - 1;
  }
  int number() {
    Token n = next();
    if (n.kind != Token::word || n.text.find_first_not_of("0123456789") != std::string::npos ||
        n.text.empty() || n.text.size() > 9) {
      fail("expected a number");
      return 0;
    }
    return std::stoi(n.text);
  }
  std::string value() {
    Token v = next();
    if (v.kind == Token::string) return v.text;
    if (v.kind == Token::word && peek().kind == Token::lparen) {
      next();
      if (next().kind != Token::rparen) fail("expected ) after " + v.text);
      long long today = floor_div(now_, 86400) * 86400;
      if (v.text == "NOW") return format_time(now_);
      if (v.text == "TODAY") return format_date(today);
      if (v.text == "YESTERDAY") return format_date(today - 86400);
      if (v.text == "TOMORROW") return format_date(today + 86400);
      fail("unsupported function " + v.text);
      return "";
    }
    if (v.kind == Token::word && !v.text.empty() &&
        v.text.find_first_not_of("-0123456789.") == std::string::npos)
      return v.text;
    fail("expected a value, got " + v.text);
    return "";
  }
  Expr expr() {
    Expr first = term();
    if (!at_keyword("or")) return first;
    Expr any;
    any.type = Expr::any;
    any.kids.push_back(std::move(first));
    while (error_.detail.empty() && take_keyword("or")) any.kids.push_back(term());
    return any;
  }
  Expr term() {
    Expr first = factor();
    if (!at_keyword("and")) return first;
    Expr all;
    all.type = Expr::all;
    all.kids.push_back(std::move(first));
    while (error_.detail.empty() && take_keyword("and")) all.kids.push_back(factor());
    return all;
  }
  Expr factor() {
    if (peek().kind == Token::lparen) {
      next();
      Expr inner = expr();
      if (next().kind != Token::rparen) fail("expected )");
      return inner;
    }
    Expr e;
    e.type = Expr::leaf;
    Condition& c = e.condition;
    Token field = next();
    if (field.kind != Token::word) {
      fail("expected a field code");
      return e;
    }
    c.field = field.text;
    c.kind = kind_of(field.text, number_field_);
    bool negate = take_keyword("not");
    if (take_keyword("in")) {
      c.op = negate ? "not in" : "in";
      if (next().kind != Token::lparen) fail("expected ( after in");
      do c.values.push_back(value());
      while (error_.detail.empty() && peek().kind == Token::comma && (next(), true));
      if (next().kind != Token::rparen) fail("expected ) after in values");
      return e;
    }
    if (take_keyword("like")) {
      c.op = negate ? "not like" : "like";
      c.values.push_back(value());
      return e;
    }
    if (negate) fail("expected in or like after not");
    Token op = next();
    if (op.kind != Token::op) {
      fail("expected an operator after " + c.field);
      return e;
    }
    c.op = op.text;
    c.values.push_back(value());
    c.number = as_number(c.values[0]);
    c.time = parse_time(c.values[0]);
    return e;
  }

  std::vector<Token> t_;
  std::string number_field_;
  long long now_;
  std::size_t pos_ = 0;
  QueryError error_;
};

// A user field's value as text, without copying when it is a string.
std::string_view field_view(const Record& r, const std::string& field, std::string& scratch) {
  auto it = r.fields.find(field);
  if (it == r.fields.end()) return {};
  auto v = it->find("value");
  if (v == it->end()) return {};
  if (v->is_string()) return v->get_ref<const std::string&>();
  scratch = v->is_null() ? "" : v->dump();
  return scratch;
}

std::string field_text(const Record& r, const std::string& field, FieldKind kind) {
  switch (kind) {
    case FieldKind::id:
      return r.id;
    case FieldKind::revision:
      return std::to_string(r.revision);
    case FieldKind::created:
      return format_time(r.created);
    case FieldKind::updated:
      return format_time(r.updated);
    case FieldKind::text:
      break;
  }
  std::string scratch;
  return std::string(field_view(r, field, scratch));
}

// The query's comparison: numbers as numbers, otherwise text.
int compare_text(std::string_view a, std::string_view b) {
  auto x = as_number(a), y = as_number(b);
  if (x && y) return *x < *y ? -1 : *x > *y ? 1 : 0;
  int c = a.compare(b);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

bool holds(const std::string& op, int c) {
  if (op == "=") return c == 0;
  if (op == "!=") return c != 0;
  if (op == "<") return c < 0;
  if (op == ">") return c > 0;
  if (op == "<=") return c <= 0;
  return c >= 0;
}

bool matches(const Condition& c, const Record& r) {
  if (c.op == "in" || c.op == "not in") {
    std::string v = field_text(r, c.field, c.kind);
    bool found = std::find(c.values.begin(), c.values.end(), v) != c.values.end();
    return found != (c.op == "not in");
  }
  if (c.op == "like" || c.op == "not like") {
    std::string v = field_text(r, c.field, c.kind);
    return (v.find(c.values[0]) != std::string::npos) != (c.op == "not like");
  }
  int cmp = 0;
  auto numeric = [&](double x) {
    if (c.number) return x < *c.number ? -1 : x > *c.number ? 1 : 0;
    return compare_text(field_text(r, c.field, c.kind), c.values[0]);
  };
  auto timed = [&](long long t) {
    if (c.time) return compare_time(t, *c.time);
    return compare_text(field_text(r, c.field, c.kind), c.values[0]);
  };
  switch (c.kind) {
    case FieldKind::id:
      cmp = numeric(static_cast<double>(r.number));
      break;
    case FieldKind::revision:
      cmp = numeric(r.revision);
      break;
    case FieldKind::created:
      cmp = timed(r.created);
      break;
    case FieldKind::updated:
      cmp = timed(r.updated);
      break;
    case FieldKind::text: {
      std::string scratch;
      std::string_view v = field_view(r, c.field, scratch);
      std::optional<TimeValue> t;
      if (c.time && (t = parse_time(v)))
        cmp = compare_time(t->seconds, *c.time);
      else
        cmp = compare_text(v, c.values[0]);
      break;
    }
  }
  return holds(c.op, cmp);
}

bool matches(const Expr& e, const Record& r) {
  switch (e.type) {
    case Expr::leaf:
      return matches(e.condition, r);
    case Expr::all:
      for (const auto& k : e.kids)
        if (!matches(k, r)) return false;
      return true;
    case Expr::any:
      for (const auto& k : e.kids)
        if (matches(k, r)) return true;
      return false;
  }
  return false;
}

struct SortKey {
  bool numeric = false;
  double number = 0;
  std::string text;
};

SortKey sort_key(const Record& r, const std::string& field, FieldKind kind) {
  switch (kind) {
    case FieldKind::id:
      return {true, static_cast<double>(r.number), {}};
    case FieldKind::revision:
      return {true, static_cast<double>(r.revision), {}};
    case FieldKind::created:
      return {true, static_cast<double>(r.created), {}};
    case FieldKind::updated:
      return {true, static_cast<double>(r.updated), {}};
    case FieldKind::text:
      break;
  }
  SortKey k;
  k.text = field_text(r, field, kind);
  if (auto n = as_number(k.text)) {
    k.numeric = true;
    k.number = *n;
  }
  return k;
}

int compare_keys(const SortKey& a, const SortKey& b) {
  if (a.numeric && b.numeric) return a.number < b.number ? -1 : a.number > b.number ? 1 : 0;
  int c = a.text.compare(b.text);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

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

  long long now() const {
    auto t = fixed_time.value_or(std::chrono::system_clock::now());
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  }
  long long stamp() const { return floor_div(now(), 60) * 60; }  // kintone keeps minutes

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

  ojson render(const App& app, const Record& r, const std::vector<std::string>& fields) const {
    ojson out = ojson::object();
    auto add = [&](const std::string& code) {
      if (code == app.record_number_field)
        out[code] = {{"type", "RECORD_NUMBER"}, {"value", r.id}};
      else if (code == "$id")
        out[code] = {{"type", "__ID__"}, {"value", r.id}};
      else if (code == "$revision")
        out[code] = {{"type", "__REVISION__"}, {"value", std::to_string(r.revision)}};
      else if (code == kCreatedTime)
        out[code] = {{"type", "CREATED_TIME"}, {"value", format_time(r.created)}};
      else if (code == kUpdatedTime)
        out[code] = {{"type", "UPDATED_TIME"}, {"value", format_time(r.updated)}};
      else if (r.fields.contains(code))
        out[code] = r.fields[code];
    };
    if (!fields.empty()) {
      for (const auto& f : fields) add(f);
      return out;
    }
    add(app.record_number_field);
    for (const auto& [code, value] : r.fields.items()) out[code] = value;
    add(kCreatedTime);
    add(kUpdatedTime);
    add("$revision");
    add("$id");
    return out;
  }

  // render(...).dump(), built from cached text: a page of 500 records costs little.
  void render_json(const App& app, const Record& r, const std::vector<std::string>& fields,
                   std::string& out) const {
    auto system = [&](const std::string& code) {
      return code == app.record_number_field || code == "$id" || code == "$revision";
    };
    bool collides = false;  // a user field named like a system one: rare, leave it to render()
    for (const auto& [code, value] : r.fields.items()) collides = collides || system(code);
    if (collides) {
      out += render(app, r, fields).dump();
      return;
    }
    auto member = [&](const std::string& code, const char* type, const std::string& value) {
      append_json_string(out, code);
      out += R"(:{"type":")";
      out += type;
      out += R"(","value":)";
      append_json_string(out, value);
      out += '}';
    };
    auto add = [&](const std::string& code) {
      if (code == app.record_number_field)
        member(code, "RECORD_NUMBER", r.id);
      else if (code == "$id")
        member(code, "__ID__", r.id);
      else if (code == "$revision")
        member(code, "__REVISION__", std::to_string(r.revision));
      else if (code == kCreatedTime)
        member(code, "CREATED_TIME", format_time(r.created));
      else if (code == kUpdatedTime)
        member(code, "UPDATED_TIME", format_time(r.updated));
      else if (auto it = r.fields.find(code); it != r.fields.end()) {
        append_json_string(out, code);
        out += ':';
        append_json(out, *it);
      } else
        return false;
      return true;
    };
    out += '{';
    if (!fields.empty()) {
      std::set<std::string> done;
      bool first = true;
      for (const auto& f : fields) {
        if (!done.insert(f).second) continue;
        std::size_t mark = out.size();
        if (!first) out += ',';
        if (add(f))
          first = false;
        else
          out.resize(mark);
      }
      out += '}';
      return;
    }
    add(app.record_number_field);
    if (!r.fields_json) {
      std::string text;
      for (const auto& [code, value] : r.fields.items()) {
        text += ',';
        append_json_string(text, code);
        text += ':';
        append_json(text, value);
      }
      r.fields_json = std::move(text);
    }
    out += *r.fields_json;
    for (const std::string& code :
         {kCreatedTime, kUpdatedTime, std::string("$revision"), std::string("$id")}) {
      out += ',';
      add(code);
    }
    out += '}';
  }

  std::string render_list(const App& app, const std::vector<std::size_t>& rows, std::size_t from,
                          std::size_t to, const std::vector<std::string>& fields) const {
    std::string out = R"({"records":[)";
    for (std::size_t i = from; i < to && i < rows.size(); ++i) {
      if (i != from) out += ',';
      render_json(app, app.records[rows[i]], fields, out);
    }
    out += ']';
    return out;
  }

  static ojson normalize_fields(const nlohmann::json& record) {
    ojson fields = ojson::object();
    if (!record.is_object()) return fields;
    for (auto it = record.begin(); it != record.end(); ++it) {
      const std::string& code = it.key();
      if (code == kCreatedTime || code == kUpdatedTime) continue;  // system fields
      const nlohmann::json& value = it.value();
      auto inner = value.is_object() ? value.find("value") : value.end();
      const nlohmann::json& v = inner != value.end() ? *inner : value;
      ojson field = ojson::object();
      field["type"] = v.is_array() ? "CHECK_BOX" : "SINGLE_LINE_TEXT";
      if (v.is_string())
        field["value"] = v.get_ref<const std::string&>();
      else if (v.is_array())
        field["value"] = v;
      else
        field["value"] = as_text(v);
      fields[code] = std::move(field);
    }
    return fields;
  }

  // ---- records: positions, the updateKey index, create and update ----

  std::optional<std::size_t> find(const App& app, const std::string& id) const {
    if (id.empty() || id.size() > 18 || id.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    long long n = std::stoll(id);
    auto it = std::lower_bound(app.records.begin(), app.records.end(), n,
                               [](const Record& r, long long v) { return r.number < v; });
    if (it == app.records.end() || it->id != id) return std::nullopt;
    return static_cast<std::size_t>(it - app.records.begin());
  }

  static std::string key_text(const App& app, const Record& r, const std::string& field) {
    return field_text(r, field, kind_of(field, app.record_number_field));
  }

  void unindex(App& app, std::size_t pos) {
    for (auto& [field, values] : app.keys) {
      auto it = values.find(key_text(app, app.records[pos], field));
      if (it == values.end()) continue;
      it->second.erase(pos);
      if (it->second.empty()) values.erase(it);
    }
  }

  void index(App& app, std::size_t pos) {
    for (auto& [field, values] : app.keys)
      values[key_text(app, app.records[pos], field)].insert(pos);
  }

  // The record an updateKey names; the last one when the fake holds duplicates.
  std::optional<std::size_t> find_by_key(App& app, const std::string& field,
                                         const std::string& value) {
    if (kind_of(field, app.record_number_field) == FieldKind::id) return find(app, value);
    auto built = app.keys.find(field);
    if (built == app.keys.end()) {
      built = app.keys.emplace(field, decltype(App::keys)::mapped_type{}).first;
      for (std::size_t i = 0; i < app.records.size(); ++i)
        built->second[key_text(app, app.records[i], field)].insert(i);
    }
    auto it = built->second.find(value);
    if (it == built->second.end() || it->second.empty()) return std::nullopt;
    return *it->second.rbegin();
  }

  std::size_t create(App& app, const nlohmann::json& record) {
    Record r;
    r.number = app.next_id++;
    r.id = std::to_string(r.number);
    r.created = r.updated = stamp();
    if (record.is_object()) {
      // kintone lets a new record carry its creation and update times (data migration).
      auto given = [&](const std::string& code, long long& into) {
        if (!record.contains(code)) return;
        const auto& v = record[code];
        auto t = parse_time(as_text(v.is_object() && v.contains("value") ? v["value"] : v));
        if (t) into = t->seconds - t->seconds % 60;
      };
      given(kCreatedTime, r.created);
      given(kUpdatedTime, r.updated);
    }
    r.fields = normalize_fields(record.is_object() ? record : nlohmann::json::object());
    app.records.push_back(std::move(r));
    index(app, app.records.size() - 1);
    return app.records.size() - 1;
  }

  void update(App& app, std::size_t pos, const nlohmann::json& record) {
    unindex(app, pos);
    Record& r = app.records[pos];
    ojson changes = normalize_fields(record.is_object() ? record : nlohmann::json::object());
    for (const auto& [code, value] : changes.items()) r.fields[code] = value;
    r.fields_json.reset();
    ++r.revision;
    r.updated = stamp();
    index(app, pos);
  }

  // ---- queries ----

  // Positions of the records `q` selects, in its order: the first `want` of them, and how many
  // match in all when `total` is asked. Uses ID bounds and ID order to stay O(page) when it can.
  std::vector<std::size_t> select(const App& app, const Query& q, std::size_t want,
                                  std::size_t* total) const {
    // Conditions on $id joined by `and` narrow the range of positions to look at.
    long long lo = std::numeric_limits<long long>::min(),
              hi = std::numeric_limits<long long>::max();
    bool captured = true;  // every condition is one of those bounds
    std::vector<const Expr*> conjuncts;
    if (q.where.type == Expr::leaf) conjuncts.push_back(&q.where);
    if (q.where.type == Expr::all)
      for (const auto& k : q.where.kids) conjuncts.push_back(&k);
    if (q.where.type == Expr::any) captured = false;
    for (const Expr* e : conjuncts) {
      const Condition& c = e->condition;
      bool bound = e->type == Expr::leaf && c.kind == FieldKind::id && c.number &&
                   std::fabs(*c.number) < 1e15 && *c.number == std::floor(*c.number) &&
                   (c.op == "=" || c.op == "<" || c.op == ">" || c.op == "<=" || c.op == ">=");
      if (!bound) {
        captured = false;
        continue;
      }
      long long n = static_cast<long long>(*c.number);
      if (c.op == "=" || c.op == ">=") lo = std::max(lo, n);
      if (c.op == "=" || c.op == "<=") hi = std::min(hi, n);
      if (c.op == ">") lo = std::max(lo, n + 1);
      if (c.op == "<") hi = std::min(hi, n - 1);
    }
    auto first = std::lower_bound(app.records.begin(), app.records.end(), lo,
                                  [](const Record& r, long long v) { return r.number < v; });
    auto last = std::upper_bound(first, app.records.end(), hi,
                                 [](long long v, const Record& r) { return v < r.number; });
    std::size_t begin = static_cast<std::size_t>(first - app.records.begin());
    std::size_t end = std::max(begin, static_cast<std::size_t>(last - app.records.begin()));
    auto selected = [&](std::size_t i) { return captured || matches(q.where, app.records[i]); };

    std::vector<std::pair<std::string, bool>> order = q.order;
    if (order.empty()) order.emplace_back("$id", true);  // kintone's default order
    std::vector<std::size_t> out;
    if (order.size() == 1 && kind_of(order[0].first, app.record_number_field) == FieldKind::id) {
      bool desc = order[0].second;
      std::size_t count = 0;
      if (captured) {
        count = end - begin;
        for (std::size_t k = 0; k < count && k < want; ++k)
          out.push_back(desc ? end - 1 - k : begin + k);
      } else {
        for (std::size_t k = 0; k < end - begin; ++k) {
          std::size_t i = desc ? end - 1 - k : begin + k;
          if (!selected(i)) continue;
          ++count;
          if (out.size() < want) out.push_back(i);
          if (!total && out.size() >= want) break;
        }
      }
      if (total) *total = count;
      return out;
    }
    std::vector<std::size_t> found;
    for (std::size_t i = begin; i < end; ++i)
      if (selected(i)) found.push_back(i);
    if (total) *total = found.size();
    std::vector<std::vector<SortKey>> keys(found.size());
    std::vector<FieldKind> kinds;
    for (const auto& [field, desc] : order)
      kinds.push_back(kind_of(field, app.record_number_field));
    for (std::size_t m = 0; m < found.size(); ++m)
      for (std::size_t k = 0; k < order.size(); ++k)
        keys[m].push_back(sort_key(app.records[found[m]], order[k].first, kinds[k]));
    std::vector<std::size_t> rank(found.size());
    for (std::size_t m = 0; m < rank.size(); ++m) rank[m] = m;
    auto before = [&](std::size_t a, std::size_t b) {
      for (std::size_t k = 0; k < order.size(); ++k) {
        int c = compare_keys(keys[a][k], keys[b][k]);
        if (c != 0) return order[k].second ? c > 0 : c < 0;
      }
      return a < b;  // ties keep ID order, like a stable sort
    };
    std::size_t n = std::min(want, rank.size());
    std::partial_sort(rank.begin(), rank.begin() + static_cast<std::ptrdiff_t>(n), rank.end(),
                      before);
    for (std::size_t m = 0; m < n; ++m) out.push_back(found[rank[m]]);
    return out;
  }

  std::optional<Query> parse_query(const App& app, const std::string& text,
                                   QueryError& error) const {
    std::string token_error;
    auto tokens = tokenize(text, token_error);
    if (!token_error.empty()) {
      error = {"GAIA_IQ11", token_error};
      return std::nullopt;
    }
    return Parser(tokens, app.record_number_field, now()).parse(error);
  }

  static KintoneError query_error(const QueryError& e) {
    if (e.code == "GAIA_IQ11")
      return {400, e.code, "クエリ記法が間違っています。" + e.detail, nullptr};
    return {400, e.code, e.detail, nullptr};
  }

  // ---- authentication ----

  static bool has_scope(const std::string& granted, const std::string& wanted) {
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

  // Authentication, as kintone checks it: tokens belong to apps, passwords to users, OAuth
  // access tokens to the scopes granted.
  std::optional<KintoneError> authenticate(const httplib::Request& req, int app, bool write) const {
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
      return KintoneError{403, "GAIA_NO01",
                          "Using this API token, you cannot run the specified API.", nullptr};
    }
    return KintoneError{401, "CB_AU01", "ログインしてください。", nullptr};
  }

  Answer refuse(const httplib::Request& req, const KintoneError& e) const {
    Answer a = answer(e);
    if (e.status == 401 && req.get_header_value("Authorization").rfind("Bearer ", 0) == 0)
      a.headers.emplace("WWW-Authenticate", R"(Bearer error="invalid_token")");
    return a;
  }

  // Guest space apps answer only under their /k/guest/{space}/v1/, others only under /k/v1/.
  static std::optional<KintoneError> check_path(const App& app, std::optional<int> path_space) {
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

  // The app an API call names, for api_requests(): its `app`, or its cursor's.
  std::optional<int> app_of(const httplib::Request& req, const std::string& api) const {
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

  // ---- the REST API ----

  Answer handle(const std::string& method, const std::string& api, const httplib::Request& req,
                std::optional<int> path_space) {
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

  // GET and DELETE /k/v1/records/cursor.json: the app is the cursor's.
  template <typename Param>
  Answer cursor_step(const std::string& method, const httplib::Request& req, Param& param,
                     std::optional<int> path_space) {
    std::string id = as_text(param("id"));
    auto it = cursors.find(id);
    if (it == cursors.end()) {
      bool credentials = req.has_header("X-Cybozu-Authorization") ||
                         req.has_header("X-Cybozu-API-Token") ||
                         req.get_header_value("Authorization").rfind("Bearer ", 0) == 0;
      if (!credentials) return answer({401, "CB_AU01", "ログインしてください。", nullptr});
      if (id.empty()) return answer(invalid_input({{"id", {{"messages", {"必須です。"}}}}}));
      return answer({404, "GAIA_CN01",
                     "指定したカーソルは存在しないか、既に有効期限が切れています。", nullptr});
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

  // ---- OAuth 2.0, authorization code grant ----

  static Answer oauth_error(int status, const std::string& error, const std::string& description) {
    ojson body;
    body["error"] = error;
    body["error_description"] = description;
    return {status, body.dump(), {{"Cache-Control", "no-store"}, {"Pragma", "no-cache"}}};
  }

  Answer authorize(const httplib::Request& req) {
    std::string client_id = req.get_param_value("client_id"),
                redirect_uri = req.get_param_value("redirect_uri"),
                state = req.get_param_value("state"), scope = req.get_param_value("scope");
    auto client = oauth_clients.find(client_id);
    if (client == oauth_clients.end())
      return oauth_error(400, "invalid_client", "unknown client_id");
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

  Answer issue_token(const httplib::Request& req) {
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
};

FakeKintone::FakeKintone(int port) : impl_(std::make_unique<Impl>()) {
  auto& s = impl_->server;
  s.new_task_queue = [] { return new httplib::ThreadPool(16); };
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(1000);
  s.set_keep_alive_timeout(5);
  auto send = [](httplib::Response& res, const Answer& a) {
    res.status = a.status;
    for (const auto& [k, v] : a.headers) res.set_header(k.c_str(), v);
    if (a.status != 302) res.set_content(a.body, "application/json; charset=utf-8");
  };
  auto handler = [this, send](const httplib::Request& req, httplib::Response& res) {
    std::chrono::milliseconds delay;
    std::string api = req.matches[2];
    {
      std::lock_guard lock(impl_->mutex);
      impl_->log_request(req);
      if (auto app = impl_->app_of(req, api)) ++impl_->api_counts[*app];
      delay = impl_->delay;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard lock(impl_->mutex);
    if (impl_->fail_count > 0) {
      --impl_->fail_count;
      res.status = impl_->fail_status;
      for (const auto& [k, v] : impl_->fail_headers) res.set_header(k.c_str(), v);
      res.set_content(impl_->fail_body, "application/json; charset=utf-8");
      return;
    }
    std::optional<int> path_space;
    std::string guest = req.matches[1];  // "guest/3/" or ""
    if (!guest.empty()) path_space = std::atoi(guest.c_str() + 6);
    std::string method = req.method;
    if (method == "POST" && req.get_header_value("X-HTTP-Method-Override") == "GET")
      method = "GET-BODY";
    Answer a;
    if (method == "GET-BODY") {
      // GET semantics with parameters in the JSON body, as kintone allows.
      httplib::Request as_get = req;
      as_get.method = "GET";
      auto json = nlohmann::json::parse(req.body, nullptr, false);
      if (!json.is_object()) {
        a = answer({400, "CB_IJ01", "JSONの形式が正しくありません。", nullptr});
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
        a = impl_->handle("GET", api, as_get, path_space);
      }
    } else {
      a = impl_->handle(method, api, req, path_space);
    }
    send(res, a);
  };
  const char* pattern =
      R"(/k/(guest/\d+/)?v1/(records|record|record/comment|record/comments|records/cursor)\.json)";
  s.Get(pattern, handler);
  s.Post(pattern, handler);
  s.Put(pattern, handler);
  s.Delete(pattern, handler);
  s.Get("/oauth2/authorization", [this, send](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(impl_->mutex);
    impl_->log_request(req);
    send(res, impl_->authorize(req));
  });
  s.Post("/oauth2/token", [this, send](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(impl_->mutex);
    impl_->log_request(req);
    send(res, impl_->issue_token(req));
  });
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

void FakeKintone::add_app(int app, std::string record_number_field, int guest_space) {
  std::lock_guard lock(impl_->mutex);
  App& a = impl_->apps[app];
  a.record_number_field = std::move(record_number_field);
  a.guest_space = guest_space;
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
  return a.records[impl_->create(a, fields)].id;
}

void FakeKintone::insert_records(int app, const std::vector<nlohmann::json>& fields) {
  std::lock_guard lock(impl_->mutex);
  App& a = impl_->apps[app];
  a.records.reserve(a.records.size() + fields.size());
  for (const auto& f : fields) impl_->create(a, f);
}

std::size_t FakeKintone::record_count(int app) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->apps.find(app);
  return it == impl_->apps.end() ? 0 : it->second.records.size();
}

void FakeKintone::set_time(std::chrono::system_clock::time_point now) {
  std::lock_guard lock(impl_->mutex);
  if (now == std::chrono::system_clock::time_point{})
    impl_->fixed_time.reset();
  else
    impl_->fixed_time = now;
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
  fail_next(count, status, std::move(body), {});
}

void FakeKintone::fail_next(int count, int status, std::string body,
                            std::multimap<std::string, std::string> headers) {
  std::lock_guard lock(impl_->mutex);
  impl_->fail_count = count;
  impl_->fail_status = status;
  impl_->fail_body = std::move(body);
  impl_->fail_headers = std::move(headers);
}

void FakeKintone::set_response_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(impl_->mutex);
  impl_->delay = delay;
}

void FakeKintone::add_oauth_client(std::string client_id, std::string client_secret,
                                   std::string redirect_uri) {
  std::lock_guard lock(impl_->mutex);
  impl_->oauth_clients[std::move(client_id)] = {std::move(client_secret), std::move(redirect_uri)};
}

void FakeKintone::set_access_token_lifetime(std::chrono::seconds lifetime) {
  std::lock_guard lock(impl_->mutex);
  impl_->token_lifetime = lifetime;
}

void FakeKintone::expire_access_tokens() {
  std::lock_guard lock(impl_->mutex);
  for (auto& [token, t] : impl_->access_tokens) t.revoked = true;
}

int FakeKintone::token_requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->token_request_count;
}

std::uint64_t FakeKintone::api_requests(int app) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->api_counts.find(app);
  return it == impl_->api_counts.end() ? 0 : it->second;
}

std::size_t FakeKintone::open_cursors() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->cursors.size();
}

}  // namespace callbridge::testing
