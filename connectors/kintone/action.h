// The typed rule action `kintone:`: find, get, create, update, upsert, comment and history
// operations on a kintone app, with values rendered from the call's variables and results set
// as variables directly (RESPONSE_ID, RESPONSE_COUNT, RESPONSE_REVISION, RESPONSE_<FIELD>), so
// no extraction regex is needed. Values can never change a query's or a record's structure.
// Loaded by config.h's load_action.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "connectors/kintone/client.h"
#include "connectors/kintone/config.h"
#include "rules/action.h"
#include "rules/template.h"

namespace callbridge::kintone {

enum class Op { find, get, create, update, upsert, comment, history };
std::string_view to_string(Op op);

struct FieldTemplates {
  std::string field;
  std::vector<rules::Template> values;
  bool list = false;  // written as a YAML list: `in (...)` in where, an array value in record
};

struct ActionSpec {
  std::string connection_name;
  ConnectionSpec connection;  // a copy, for `simulate` without the running service
  int app = 0;
  Op op = Op::find;
  std::vector<FieldTemplates> where;
  std::vector<std::string> phone_fields;  // `phone:` match any way the number is written
  std::optional<rules::Template> phone_value;
  std::optional<rules::Template> query;
  std::vector<std::string> fields;
  std::string order_by;
  int limit = 1;
  std::optional<rules::Template> id, revision;
  std::string key_field;
  std::optional<rules::Template> key_value;
  std::vector<FieldTemplates> record;
  std::optional<rules::Template> comment;
  std::vector<std::pair<rules::Template, std::string>> mentions;  // code, type
  std::vector<std::pair<std::string, std::string>> results;       // RESPONSE_<suffix>, field
};

class KintoneAction final : public rules::Action {
 public:
  explicit KintoneAction(ActionSpec spec) : spec_(std::move(spec)) {}
  void run(rules::ActionContext& ctx, rules::RuleOutcome& out) const override;
  bool idempotent() const override;
  std::string describe() const override;
  const ActionSpec& spec() const { return spec_; }

 private:
  ActionSpec spec_;
};

}  // namespace callbridge::kintone
