#include "tests/fakes/fake_kintone_query.h"

#include <algorithm>
#include <cstdlib>

namespace callbridge::testing::kintone_fake {

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

namespace {

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

}  // namespace

FieldKind kind_of(const std::string& field, const std::string& number_field) {
  if (field == "$id" || field == number_field) return FieldKind::id;
  if (field == "$revision") return FieldKind::revision;
  if (field == kCreatedTime) return FieldKind::created;
  if (field == kUpdatedTime) return FieldKind::updated;
  return FieldKind::text;
}

namespace {

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

}  // namespace

std::optional<Query> parse_query(const std::string& text, const std::string& number_field,
                                 long long now, QueryError& error) {
  std::string token_error;
  auto tokens = tokenize(text, token_error);
  if (!token_error.empty()) {
    error = {"GAIA_IQ11", token_error};
    return std::nullopt;
  }
  return Parser(tokens, number_field, now).parse(error);
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

namespace {

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

}  // namespace

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

}  // namespace callbridge::testing::kintone_fake
