// `{VAR}` templates, compiled once at load. Each placeholder knows where it lands (JSON string,
// bare JSON value, URL, header, form, text) and escapes the value for that place, so a caller ID
// can never change the structure of the request it is rendered into.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbridge::rules {

using Variables = std::map<std::string, std::string, std::less<>>;

enum class Destination { text, json, url, header, form };

// Filters written as `{NAME|filter|...}`, applied left to right before destination escaping.
enum class Filter {
  query,   // kintone query string literal: "..." with \" and \\ escaped
  base64,  // standard base64 of the value
  url,     // percent-encode (RFC 3986 unreserved characters stay)
  raw,     // skip destination escaping (CR/LF stay rejected in headers)
};

struct RenderReport {
  std::vector<std::string> undefined;  // variables that were not set (rendered empty)
  std::string error;                   // non-empty: the result must not be sent
};

class Template {
 public:
  Template() = default;

  struct Error {
    std::string message;
    std::size_t offset = 0;  // byte offset into the template text
  };
  // Looks up `${NAME}` at load time; nullopt means undefined (an error).
  using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

  // Compiles `text`; errors are appended. `${NAME}` becomes a secret segment.
  static Template compile(std::string_view text, Destination destination, const EnvLookup& env,
                          std::vector<Error>& errors);
  static Template literal(std::string text, bool secret = false);

  // `redacted` renders secret segments as `[secret]`, for anything shown or stored.
  std::string render(const Variables& vars, RenderReport& report, bool redacted = false) const;

  // Treats the placeholders that land in a kintone query (the `query` member of a JSON body, the
  // `query=` URL parameter, the whole of a text template) as query values: inside a query string literal they are escaped for
  // the query language, in a bare position written as a quoted literal. Placeholders with an
  // explicit `|query` or `|raw` are left as written. Returns each treated placeholder.
  struct QueryPlaceholder {
    std::string name;
    std::size_t offset = 0;  // byte offset into the template text
  };
  std::vector<QueryPlaceholder> protect_kintone_query();
  // The text with every placeholder as "x": enough to read a URL's scheme, host and path.
  std::string probe() const;

  bool empty() const { return segments_.empty(); }
  Destination destination() const { return destination_; }
  // Variables the template reads, in order of first use.
  std::vector<std::string> variables() const;

 private:
  enum class Kind { literal, secret, variable };
  enum class Context { plain, json_string, json_bare };
  enum class QueryContext { none, literal, bare };  // position in a kintone query
  struct Segment {
    Kind kind = Kind::literal;
    std::string text;  // literal text, secret value or variable name
    std::vector<Filter> filters;
    bool raw = false;
    Context context = Context::plain;
    QueryContext query = QueryContext::none;
    std::size_t offset = 0;  // byte offset of the segment in the template text
  };
  void append_value(std::string& out, const Segment& segment, std::string value,
                    RenderReport& report) const;

  std::vector<Segment> segments_;
  Destination destination_ = Destination::text;
};

// Escaping primitives, shared with connectors.
std::string json_escape(std::string_view value);  // without the surrounding quotes
std::string percent_encode(std::string_view value);
std::string kintone_query_literal(std::string_view value);  // "..." with \ and " escaped
std::string kintone_query_escape(std::string_view value);   // the same without the quotes
std::string base64_encode(std::string_view value);
bool is_json_number(std::string_view value);

}  // namespace callbridge::rules
