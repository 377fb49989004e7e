#include "rules/template.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace callbridge::rules {

namespace {

bool is_name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}

// Length of the valid UTF-8 sequence at s[i], or 0 if invalid.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if (n == 3 && ((c == 0xE0 && b(i + 1) < 0xA0) || (c == 0xED && b(i + 1) >= 0xA0))) return 0;
  if (n == 4 && ((c == 0xF0 && b(i + 1) < 0x90) || (c == 0xF4 && b(i + 1) >= 0x90))) return 0;
  return n;
}

std::optional<Filter> parse_filter(std::string_view name) {
  if (name == "query") return Filter::query;
  if (name == "base64") return Filter::base64;
  if (name == "url") return Filter::url;
  if (name == "raw") return Filter::raw;
  return std::nullopt;
}

}  // namespace

std::string json_escape(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 8);
  for (std::size_t i = 0; i < value.size();) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    if (c >= 0x80) {
      std::size_t n = utf8_sequence(value, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD keeps the document valid JSON
        ++i;
      } else {
        out.append(value.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
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
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  return out;
}

std::string percent_encode(std::string_view value) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size() * 3);
  for (unsigned char c : value) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string kintone_query_escape(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string kintone_query_literal(std::string_view value) {
  return '"' + kintone_query_escape(value) + '"';
}

std::string base64_encode(std::string_view value) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((value.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < value.size(); i += 3) {
    unsigned n = (static_cast<unsigned char>(value[i]) << 16) |
                 (static_cast<unsigned char>(value[i + 1]) << 8) |
                 static_cast<unsigned char>(value[i + 2]);
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += table[(n >> 6) & 63];
    out += table[n & 63];
  }
  if (i < value.size()) {
    unsigned n = static_cast<unsigned char>(value[i]) << 16;
    if (i + 1 < value.size()) n |= static_cast<unsigned char>(value[i + 1]) << 8;
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += i + 1 < value.size() ? table[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool is_json_number(std::string_view v) {
  std::size_t i = 0;
  auto digits = [&] {
    std::size_t start = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    return i > start;
  };
  if (i < v.size() && v[i] == '-') ++i;
  if (i < v.size() && v[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < v.size() && v[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == v.size();
}

Template Template::literal(std::string text, bool secret) {
  Template t;
  if (!text.empty()) {
    Segment s;
    s.kind = secret ? Kind::secret : Kind::literal;
    s.text = std::move(text);
    t.segments_.push_back(std::move(s));
  }
  return t;
}

Template Template::compile(std::string_view text, Destination destination, const EnvLookup& env,
                           std::vector<Error>& errors) {
  Template t;
  t.destination_ = destination;
  std::vector<std::size_t> offsets;  // source offset of each segment
  auto add_literal = [&](std::string_view piece, std::size_t at) {
    if (!t.segments_.empty() && t.segments_.back().kind == Kind::literal) {
      t.segments_.back().text.append(piece);
      return;
    }
    Segment s;
    s.text = std::string(piece);
    t.segments_.push_back(std::move(s));
    offsets.push_back(at);
  };

  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
      std::size_t j = i + 2;
      while (j < text.size() && is_name_char(text[j])) ++j;
      if (j == i + 2 || j >= text.size() || text[j] != '}' || !is_name_start(text[i + 2])) {
        errors.push_back({"malformed ${NAME} reference", i});
        ++i;
        continue;
      }
      std::string_view name = text.substr(i + 2, j - i - 2);
      std::optional<std::string> value = env(name);
      if (!value) {
        errors.push_back({"environment variable ${" + std::string(name) + "} is not set", i});
      } else {
        Segment s;
        s.kind = Kind::secret;
        s.text = std::move(*value);
        t.segments_.push_back(std::move(s));
        offsets.push_back(i);
      }
      i = j + 1;
      continue;
    }
    if (text[i] == '{' && i + 1 < text.size() && is_name_start(text[i + 1])) {
      std::size_t j = i + 1;
      while (j < text.size() && is_name_char(text[j])) ++j;
      Segment s;
      s.kind = Kind::variable;
      s.text = std::string(text.substr(i + 1, j - i - 1));
      bool ok = true;
      while (ok && j < text.size() && text[j] == '|') {
        std::size_t k = ++j;
        while (k < text.size() && is_name_char(text[k])) ++k;
        std::string_view fname = text.substr(j, k - j);
        if (k >= text.size() || (text[k] != '}' && text[k] != '|')) {
          ok = false;
          break;
        }
        std::optional<Filter> f = parse_filter(fname);
        if (!f) {
          errors.push_back({"unknown filter \"" + std::string(fname) + "\" in {" + s.text +
                                "}; known: query, base64, url, raw",
                            j});
        } else if (*f == Filter::raw) {
          s.raw = true;
        } else {
          s.filters.push_back(*f);
        }
        j = k;
      }
      if (ok && j < text.size() && text[j] == '}') {
        t.segments_.push_back(std::move(s));
        offsets.push_back(i);
        i = j + 1;
        continue;
      }
      // Not a placeholder (e.g. `{A B}`): keep the brace as text.
    }
    add_literal(text.substr(i, 1), i);
    ++i;
  }

  for (std::size_t n = 0; n < t.segments_.size(); ++n) t.segments_[n].offset = offsets[n];

  if (destination == Destination::json) {
    // Walk the JSON structure to learn which placeholders sit inside strings, then prove the
    // body is valid JSON with probe values so a broken body is reported at load time.
    bool in_string = false, escaped = false;
    std::string probe;
    std::vector<std::size_t> probe_source;
    for (std::size_t n = 0; n < t.segments_.size(); ++n) {
      Segment& s = t.segments_[n];
      if (s.kind == Kind::variable) {
        s.context = in_string ? Context::json_string : Context::json_bare;
        std::string value = in_string ? "x" : "0";
        probe += value;
        probe_source.insert(probe_source.end(), value.size(), offsets[n]);
        continue;
      }
      for (std::size_t k = 0; k < s.text.size(); ++k) {
        char c = s.text[k];
        if (in_string) {
          if (escaped)
            escaped = false;
          else if (c == '\\')
            escaped = true;
          else if (c == '"')
            in_string = false;
        } else if (c == '"') {
          in_string = true;
        }
        probe += c;
        probe_source.push_back(s.kind == Kind::literal ? offsets[n] + k : offsets[n]);
      }
    }
    try {
      nlohmann::json parsed = nlohmann::json::parse(probe);
      (void)parsed;
    } catch (const nlohmann::json::parse_error& e) {
      std::size_t at = e.byte == 0 ? 0 : std::min<std::size_t>(e.byte - 1, probe.size());
      std::size_t source = probe_source.empty()       ? 0
                           : at < probe_source.size() ? probe_source[at]
                                                      : probe_source.back() + 1;
      std::string message = "body is not valid JSON (checked with placeholder values)";
      std::string_view what = e.what();
      if (auto p = what.find("syntax error"); p != std::string_view::npos)
        message += ": " + std::string(what.substr(p));
      if (text.find("\xE2\x80\x9C") != std::string_view::npos ||
          text.find("\xE2\x80\x9D") != std::string_view::npos ||
          text.find("\xE2\x80\x98") != std::string_view::npos ||
          text.find("\xE2\x80\x99") != std::string_view::npos)
        message += " (typographic quotes found: use ASCII \" in JSON)";
      errors.push_back({message, source});
    } catch (const nlohmann::json::exception& e) {
      // Well-formed but not representable, e.g. a number beyond a double (1e400).
      errors.push_back(
          {"body is not valid JSON (checked with placeholder values): " + std::string(e.what()),
           0});
    }
  }
  return t;
}

namespace {

// Follows a kintone query one decoded character at a time: inside a string literal or not.
struct QueryScanner {
  bool in_literal = false, escaped = false;
  void feed(char c) {
    if (!in_literal) {
      in_literal = c == '"';
    } else if (escaped) {
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c == '"') {
      in_literal = false;
    }
  }
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes `\"`, `\\` and `\uXXXX` of a JSON string, one character at a time; `feed` returns the
// decoded character, or nullopt while an escape is incomplete.
struct JsonStringDecoder {
  int state = 0;  // 0 plain, 1 after backslash, 2..5 reading \u digits
  int code = 0;
  std::optional<char> feed(char c) {
    if (state == 0) {
      if (c == '\\') {
        state = 1;
        return std::nullopt;
      }
      return c;
    }
    if (state == 1) {
      if (c == 'u') {
        state = 2;
        code = 0;
        return std::nullopt;
      }
      state = 0;
      return c == '"' || c == '\\' || c == '/' ? c : ' ';
    }
    code = code * 16 + std::max(0, hex_value(c));
    if (++state < 6) return std::nullopt;
    state = 0;
    return code == 0x22 ? '"' : code == 0x5C ? '\\' : code < 0x80 ? static_cast<char>(code) : 'x';
  }
};

// Decodes %XX and `+` of a URL query value, one character at a time.
struct UrlValueDecoder {
  int pending = 0, code = 0;
  std::optional<char> feed(char c) {
    if (pending > 0) {
      code = code * 16 + std::max(0, hex_value(c));
      if (--pending > 0) return std::nullopt;
      return static_cast<char>(code);
    }
    if (c == '%') {
      pending = 2;
      code = 0;
      return std::nullopt;
    }
    return c == '+' ? ' ' : c;
  }
};

}  // namespace

std::string Template::probe() const {
  std::string out;
  for (const Segment& s : segments_) out += s.kind == Kind::variable ? std::string("x") : s.text;
  return out;
}

std::vector<Template::QueryPlaceholder> Template::protect_kintone_query() {
  std::vector<QueryPlaceholder> treated;
  auto treat = [&](Segment& s, const QueryScanner& scanner) {
    if (s.raw || std::find(s.filters.begin(), s.filters.end(), Filter::query) != s.filters.end())
      return;
    s.query = scanner.in_literal ? QueryContext::literal : QueryContext::bare;
    treated.push_back({s.text, s.offset});
  };

  if (destination_ == Destination::json) {
    // JSON tokens: a string that follows `"query":` is a kintone query.
    enum class Last { other, string, colon };
    Last last = Last::other;
    bool in_string = false, escaped = false, key_known = true, in_query = false;
    std::string current, last_string, key;
    QueryScanner scanner;
    JsonStringDecoder decoder;
    for (Segment& s : segments_) {
      if (s.kind == Kind::variable) {
        if (in_string) {
          key_known = false;
          if (in_query) treat(s, scanner);
        } else {
          last = Last::other;
        }
        continue;
      }
      for (char c : s.text) {
        if (in_string) {
          if (in_query)
            if (auto d = decoder.feed(c)) scanner.feed(*d);
          if (escaped) {
            escaped = false;
          } else if (c == '\\') {
            escaped = true;
          } else if (c == '"') {
            in_string = false;
            last_string = key_known ? current : std::string();
            last = Last::string;
            continue;
          }
          current += c;
        } else if (c == '"') {
          in_string = true;
          in_query = last == Last::colon && key == "query";
          current.clear();
          key_known = true;
          scanner = QueryScanner{};
          decoder = JsonStringDecoder{};
        } else if (c == ':') {
          key = last == Last::string ? last_string : std::string();
          last = Last::colon;
        } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
          last = Last::other;
        }
      }
    }
  } else if (destination_ == Destination::url) {
    // The value of the `query=` parameter is a kintone query.
    enum class Part { path, name, value, fragment };
    Part part = Part::path;
    std::string name;
    bool name_known = true, in_query = false;
    QueryScanner scanner;
    UrlValueDecoder decoder;
    for (Segment& s : segments_) {
      if (s.kind == Kind::variable) {
        if (part == Part::name) name_known = false;
        if (part == Part::value && in_query) treat(s, scanner);
        continue;
      }
      for (char c : s.text) {
        if (part == Part::fragment) break;
        if (c == '#') {
          part = Part::fragment;
        } else if (part == Part::path) {
          if (c == '?') part = Part::name;
        } else if (c == '&') {
          part = Part::name;
          name.clear();
          name_known = true;
        } else if (part == Part::name) {
          if (c == '=') {
            part = Part::value;
            in_query = name_known && name == "query";
            scanner = QueryScanner{};
            decoder = UrlValueDecoder{};
          } else {
            name += c;
          }
        } else if (in_query) {
          if (auto d = decoder.feed(c)) scanner.feed(*d);
        }
      }
    }
  } else if (destination_ == Destination::text) {
    // The whole text is a kintone query (a typed kintone action's `query:`).
    QueryScanner scanner;
    for (Segment& s : segments_) {
      if (s.kind == Kind::variable) {
        treat(s, scanner);
        continue;
      }
      for (char c : s.text) scanner.feed(c);
    }
  }
  return treated;
}

std::vector<std::string> Template::variables() const {
  std::vector<std::string> names;
  for (const Segment& s : segments_)
    if (s.kind == Kind::variable && std::find(names.begin(), names.end(), s.text) == names.end())
      names.push_back(s.text);
  return names;
}

void Template::append_value(std::string& out, const Segment& s, std::string value,
                            RenderReport& report) const {
  bool query_filter = false;
  for (Filter f : s.filters) {
    switch (f) {
      case Filter::query:
        value = kintone_query_literal(value);
        query_filter = true;
        break;
      case Filter::base64:
        value = base64_encode(value);
        break;
      case Filter::url:
        value = percent_encode(value);
        break;
      case Filter::raw:
        break;
    }
  }
  if (!s.raw && !query_filter && s.query != QueryContext::none)
    value =
        s.query == QueryContext::bare ? kintone_query_literal(value) : kintone_query_escape(value);
  if (destination_ == Destination::header &&
      value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
    report.error = "value of {" + s.text + "} contains CR, LF or NUL and cannot go in a header";
    return;
  }
  if (s.raw) {
    out += value;
    return;
  }
  switch (destination_) {
    case Destination::text:
    case Destination::header:
      out += value;
      break;
    case Destination::url:
    case Destination::form:
      out += percent_encode(value);
      break;
    case Destination::json:
      if (s.context == Context::json_string) {
        out += json_escape(value);
      } else if (value.empty()) {
        out += "null";
      } else if (is_json_number(value)) {
        out += value;
      } else {
        out += '"' + json_escape(value) + '"';
      }
      break;
  }
}

std::string Template::render(const Variables& vars, RenderReport& report, bool redacted) const {
  std::string out;
  for (const Segment& s : segments_) {
    switch (s.kind) {
      case Kind::literal:
        out += s.text;
        break;
      case Kind::secret:
        out += redacted ? "[secret]" : s.text;
        break;
      case Kind::variable: {
        auto it = vars.find(s.text);
        if (it == vars.end() && std::find(report.undefined.begin(), report.undefined.end(),
                                          s.text) == report.undefined.end())
          report.undefined.push_back(s.text);
        append_value(out, s, it == vars.end() ? std::string() : it->second, report);
        break;
      }
    }
  }
  return out;
}

}  // namespace callbridge::rules
