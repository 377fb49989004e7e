// The fake kintone's query language, the subset the bridge and its users need: conditions on
// fields (= != < > <= >= in "not in" like "not like", and/or, parentheses), order by, limit and
// offset, parsed into a Query and evaluated on records as kintone does.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/fakes/fake_kintone_clock.h"

namespace callbridge::testing::kintone_fake {

using ojson = nlohmann::ordered_json;

// kintone's default codes of the two system time fields every app has.
inline const std::string kCreatedTime = "作成日時";
inline const std::string kUpdatedTime = "更新日時";

struct Record {
  std::string id;
  long long number = 0;  // id as a number: records stay in ascending order of it
  int revision = 1;
  ojson fields = ojson::object();      // code -> {"type", "value"}
  long long created = 0, updated = 0;  // seconds since the epoch, whole minutes
  // `fields` as JSON members (,"code":{...}...), rendered on first use: list answers stay fast.
  mutable std::optional<std::string> fields_json;
};

// A number as the query language compares it: digits, '-' and '.' only.
std::optional<double> as_number(std::string_view s);

// How a field compares: IDs and revisions as numbers, the system times as times.
enum class FieldKind { id, revision, created, updated, text };

FieldKind kind_of(const std::string& field, const std::string& number_field);

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

// Parses `text` for an app whose record number field is `number_field`, at `now` (seconds; the
// functions TODAY(), NOW() and friends read it). Null with `error` (kintone's code and detail).
std::optional<Query> parse_query(const std::string& text, const std::string& number_field,
                                 long long now, QueryError& error);

// A field's value as the query compares it, as text.
std::string field_text(const Record& r, const std::string& field, FieldKind kind);
bool matches(const Condition& c, const Record& r);
bool matches(const Expr& e, const Record& r);

struct SortKey {
  bool numeric = false;
  double number = 0;
  std::string text;
};

SortKey sort_key(const Record& r, const std::string& field, FieldKind kind);
int compare_keys(const SortKey& a, const SortKey& b);

}  // namespace callbridge::testing::kintone_fake
