// kintone: error bodies as a CRM may send them (any status, any bytes, a Retry-After), and query
// building, where a caller's value must stay one string literal whatever it holds.
#include <nlohmann/json.hpp>

#include "connectors/kintone/client.h"
#include "connectors/kintone/errors.h"
#include "fuzz/fuzz_input.h"

using namespace callbridge;

namespace {

constexpr const char* kOperators[] = {"=", "!=", ">", "<", ">=", "<=", "like", "in", "not in"};

// Reads the kintone string literal at `text[i]`, advancing `i`; nullopt when there is none.
std::optional<std::string> read_literal(std::string_view text, std::size_t& i) {
  if (i >= text.size() || text[i] != '"') return std::nullopt;
  std::string out;
  for (++i; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      out += text[++i];
    } else if (text[i] == '"') {
      ++i;
      return out;
    } else {
      out += text[i];
    }
  }
  return std::nullopt;
}

void errors(unsigned char sel, const std::vector<std::string>& in) {
  http::Outcome outcome;
  outcome.kind = static_cast<http::OutcomeKind>(sel % 7);
  outcome.status = 100 + (static_cast<unsigned char>(in[0].empty() ? 0 : in[0][0]) * 2) % 500;
  outcome.body = in[0];
  if (in.size() > 1) outcome.headers.emplace_back("Retry-After", in[1]);
  if (in.size() > 2) outcome.error = in[2];
  auto error = kintone::parse_error(outcome);
  fuzz::check(error.has_value() != outcome.ok(), "an error exactly when the exchange failed");
  if (!error) return;
  (void)error->summary();
  (void)kintone::to_string(error->kind);
  (void)kintone::nothing_applied(outcome, *error);
  (void)kintone::classify(outcome, error->code);
  if (error->retry_after)
    fuzz::check(error->retry_after->count() >= 0, "Retry-After is never negative");
}

void query(unsigned char sel, const std::vector<std::string>& in) {
  // Parts: a field code, then values; each field code that kintone accepts starts a condition.
  kintone::FindQuery q;
  std::size_t i = 0;
  while (i < in.size()) {
    kintone::Condition c;
    c.field = in[i++];
    c.op = kOperators[(sel + q.where.size()) % 9];
    std::size_t count = c.op == std::string("in") || c.op == std::string("not in") ? 2 : 1;
    for (std::size_t k = 0; k < count && i < in.size(); ++k) c.values.push_back(in[i++]);
    if (!kintone::valid_field_code(c.field) || c.values.empty()) continue;
    q.where.push_back(std::move(c));
  }
  std::string text = kintone::build_condition(q);
  (void)kintone::build_query(q);
  (void)kintone::find_call(1, q);

  // Read the query back: every value is exactly one literal, in its place.
  std::size_t pos = 0;
  for (std::size_t n = 0; n < q.where.size(); ++n) {
    const auto& c = q.where[n];
    std::string head = (n ? " and " : "") + c.field + " " + c.op + " ";
    fuzz::check(text.compare(pos, head.size(), head) == 0, "condition starts with field and op");
    pos += head.size();
    bool list = c.op == "in" || c.op == "not in";
    if (list) {
      fuzz::check(text[pos] == '(', "list opens");
      ++pos;
    }
    for (std::size_t v = 0; v < c.values.size(); ++v) {
      if (v) {
        fuzz::check(text.compare(pos, 2, ", ") == 0, "list separator");
        pos += 2;
      }
      auto literal = read_literal(text, pos);
      fuzz::check(literal.has_value() && *literal == c.values[v], "a value reads back intact");
    }
    if (list) {
      fuzz::check(text[pos] == ')', "list closes");
      ++pos;
    }
  }
  fuzz::check(pos == text.size(), "nothing after the last condition");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  unsigned char sel = fuzz::selector(data, size);
  auto in = fuzz::parts(data, size, 1);
  if (sel & 1)
    query(static_cast<unsigned char>(sel >> 1), in);
  else
    errors(static_cast<unsigned char>(sel >> 1), in);
  return 0;
}
