#include "connectors/kintone/action.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdlib>

#include "connectors/kintone/phone.h"
#include "connectors/kintone/service.h"
#include "rules/config_reader.h"

namespace callbridge::kintone {

using nlohmann::json;

namespace {

// Stands in for a transport where nothing may be sent (dry runs only build requests).
class NoTransport final : public http::Transport {
 public:
  http::Outcome perform(const http::Request&) override {
    http::Outcome o;
    o.kind = http::OutcomeKind::invalid_request;
    o.error = "dry run";
    return o;
  }
};

bool is_variable_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// A kintone field value as one variable: text as is, lists joined with ", ", users by name.
std::string value_text(const json& field) {
  if (!field.is_object() || !field.contains("value")) return "";
  const json& v = field["value"];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_array()) {
    std::string out;
    for (const auto& item : v) {
      std::string one = item.is_string()   ? item.get<std::string>()
                        : item.is_object() ? item.value("name", item.value("code", ""))
                                           : item.dump();
      out += (out.empty() ? "" : ", ") + one;
    }
    return out;
  }
  if (v.is_object()) return v.value("name", v.value("code", v.dump()));
  return v.dump();
}

struct Rendered {
  ApiCall call;
  RecordKey key;                      // update
  std::optional<long long> revision;  // update
  bool no_match = false;              // a phone search for a withheld number: nothing to ask
};

}  // namespace

std::string_view to_string(Op op) {
  switch (op) {
    case Op::find:
      return "find";
    case Op::get:
      return "get";
    case Op::create:
      return "create";
    case Op::update:
      return "update";
    case Op::upsert:
      return "upsert";
    case Op::comment:
      return "comment";
    case Op::history:
      return "history";
  }
  return "find";
}

bool KintoneAction::idempotent() const {
  switch (spec_.op) {
    case Op::find:
    case Op::get:
    case Op::update:
    case Op::upsert:
      return true;
    case Op::history:
      return spec_.key_value.has_value();
    case Op::create:
    case Op::comment:
      return false;
  }
  return false;
}

std::string KintoneAction::describe() const {
  return "kintone." + std::string(to_string(spec_.op)) + " app " + std::to_string(spec_.app) +
         " on " + spec_.connection_name;
}

void KintoneAction::run(rules::ActionContext& ctx, rules::RuleOutcome& out) const {
  const ActionSpec& s = spec_;
  rules::RenderReport report, shown_report;
  auto make = [&](bool redacted, rules::RenderReport& rep) {
    auto r = [&](const rules::Template& t) { return t.render(ctx.call.vars, rep, redacted); };
    Rendered out_call;
    json record = json::object();
    for (const auto& f : s.record) {
      if (f.list) {
        json values = json::array();
        for (const auto& t : f.values) values.push_back(r(t));
        record[f.field] = {{"value", values}};
      } else {
        record[f.field] = {{"value", r(f.values.at(0))}};
      }
    }
    switch (s.op) {
      case Op::find: {
        FindQuery q;
        for (const auto& w : s.where) {
          Condition c{w.field, w.list ? "in" : "=", {}};
          for (const auto& t : w.values) c.values.push_back(r(t));
          q.where.push_back(std::move(c));
        }
        std::string phone_part;
        if (s.phone_value) {
          auto key = phone_key(r(*s.phone_value));
          if (!key) {
            out_call.no_match = true;
          } else {
            FindQuery variants;
            std::vector<std::string> written = phone_variants(*key);
            for (const auto& field : s.phone_fields) {
              variants.where = {{field, "in", written}};
              phone_part += (phone_part.empty() ? "" : " or ") + build_condition(variants);
            }
          }
        }
        std::string free = s.query ? r(*s.query) : "";
        if (!phone_part.empty())
          q.query = free.empty() ? phone_part : "(" + phone_part + ") and (" + free + ")";
        else
          q.query = free;
        if (!s.fields.empty()) {
          q.fields = s.fields;
          for (const char* meta : {"$id", "$revision"})
            if (std::find(q.fields.begin(), q.fields.end(), meta) == q.fields.end())
              q.fields.push_back(meta);
        }
        q.order_by = s.order_by;
        q.limit = s.limit;
        out_call.call = find_call(s.app, q);
        break;
      }
      case Op::get:
        out_call.call = get_call(s.app, r(*s.id));
        break;
      case Op::create:
        out_call.call = create_call(s.app, record);
        break;
      case Op::update: {
        if (s.id)
          out_call.key.id = r(*s.id);
        else
          out_call.key = {"", s.key_field, r(*s.key_value)};
        if (s.revision) {
          std::string rev = r(*s.revision);
          char* end = nullptr;
          long long v = std::strtoll(rev.c_str(), &end, 10);
          if (!rev.empty() && *end == '\0') out_call.revision = v;
        }
        out_call.call = update_call(s.app, out_call.key, record, out_call.revision);
        break;
      }
      case Op::upsert:
        out_call.call = upsert_call(s.app, {{s.key_field, r(*s.key_value), record}});
        break;
      case Op::history:
        out_call.call = s.key_value ? upsert_call(s.app, {{s.key_field, r(*s.key_value), record}})
                                    : create_call(s.app, record);
        break;
      case Op::comment: {
        std::vector<Mention> mentions;
        for (const auto& [code, type] : s.mentions) mentions.push_back({r(code), type});
        out_call.call = comment_call(s.app, r(*s.id), r(*s.comment), mentions);
        break;
      }
    }
    return out_call;
  };
  Rendered real = make(false, report);
  Rendered shown = make(true, shown_report);
  for (const auto& name : report.undefined)
    if (std::find(out.undefined.begin(), out.undefined.end(), name) == out.undefined.end())
      out.undefined.push_back(name);

  // The client: the running service's (shared limits and counters), or a temporary one.
  static NoTransport no_transport;
  Client* client = nullptr;
  std::unique_ptr<Client> temporary;
  if (ctx.services) {
    if (auto* service = ctx.services->find<KintoneService>(KintoneService::kName))
      client = service->client(s.connection_name);
  }
  if (!client) {
    Connection c = s.connection.connection;
    if (s.connection.oauth) {
      // Outside `serve` there is no token store: such a connection cannot authenticate.
      c.auth.oauth = std::make_shared<OAuthTokens>(s.connection_name, c.base_url,
                                                   *s.connection.oauth, no_transport, nullptr);
    }
    temporary = std::make_unique<Client>(
        std::move(c), ctx.transport ? *ctx.transport : static_cast<http::Transport&>(no_transport));
    client = temporary.get();
  }

  auto redact = [&](http::Request r) {
    r.url = ctx.secrets.redact(r.url);
    r.body = ctx.secrets.redact(r.body);
    for (auto& [name, value] : r.headers) value = ctx.secrets.redact(value);
    return r;
  };
  out.request = redact(client->build(shown.call, true));
  if (!report.error.empty()) {
    out.status = rules::RuleStatus::failed;
    out.error = ctx.secrets.redact(report.error);
    return;
  }

  auto set = [&](const std::string& name, const std::string& value) {
    ctx.call.vars[name] = value;
    out.extracted[name] = value;
  };
  auto unset = [&](const std::string& name) { ctx.call.vars.erase(name); };

  if (real.no_match) {
    // A withheld or non-numeric caller ID matches no customer; kintone is not asked.
    if (!ctx.transport) return;
    set("RESPONSE_COUNT", "0");
    for (const char* n : {"RESPONSE_ID", "RESPONSE_REVISION"}) unset(n);
    for (const auto& [suffix, field] : s.results) unset("RESPONSE_" + suffix);
    out.status = rules::RuleStatus::succeeded;
    return;
  }
  if (!ctx.transport) return;  // dry run: rendered and shown, not sent

  // Every exchange is shown to the journal just before it leaves; the shown request carries
  // the redacted rendering of the values, with the real one's shape (method, URL, batches).
  Client::BeforeSend before_send = [&](const http::Request& as_built) {
    http::Request r = redact(as_built);
    out.request = r;
    return ctx.before_send ? ctx.before_send(r) : true;
  };
  Result result;
  if (s.op == Op::update)
    result =
        client->update(s.app, real.key, real.call.params["record"], real.revision, before_send);
  else
    result = client->call(real.call, before_send);

  out.sent = result.attempts > 0;
  out.response = result.outcome;
  if (!result.ok()) {
    const ApiError& e = *result.error;
    out.status = e.status != 0 ? rules::RuleStatus::http_error : rules::RuleStatus::failed;
    out.error = ctx.secrets.redact("kintone " + std::string(to_string(s.op)) + ": " + e.summary());
    if (e.kind == ErrorClass::retry) {
      if (idempotent() || nothing_applied(result.outcome, e)) out.retryable = true;
    } else {
      out.retryable = false;
    }
    set("RESPONSE_ERROR", e.code);
    return;
  }
  unset("RESPONSE_ERROR");
  out.status = rules::RuleStatus::succeeded;
  const json& body = result.body;

  auto set_record = [&](const json* rec) {
    auto field_var = [&](const std::string& var, const std::string& field) {
      if (rec && rec->contains(field))
        set(var, value_text((*rec)[field]));
      else
        unset(var);
    };
    field_var("RESPONSE_ID", "$id");
    field_var("RESPONSE_REVISION", "$revision");
    for (const auto& [suffix, field] : s.results) field_var("RESPONSE_" + suffix, field);
  };
  switch (s.op) {
    case Op::find: {
      const json& records = body["records"];
      std::string total = body.contains("totalCount") && body["totalCount"].is_string()
                              ? body["totalCount"].get<std::string>()
                              : std::to_string(records.size());
      set("RESPONSE_COUNT", total);
      set_record(records.empty() ? nullptr : &records[0]);
      break;
    }
    case Op::get:
      set_record(body.contains("record") ? &body["record"] : nullptr);
      break;
    case Op::create:
      set("RESPONSE_ID", body.value("id", ""));
      set("RESPONSE_REVISION", body.value("revision", ""));
      break;
    case Op::update:
      if (!real.key.id.empty()) set("RESPONSE_ID", real.key.id);
      set("RESPONSE_REVISION", body.value("revision", ""));
      break;
    case Op::upsert:
    case Op::history:
      if (body.contains("records") && !body["records"].empty()) {
        const json& r = body["records"][0];
        set("RESPONSE_ID", r.value("id", ""));
        set("RESPONSE_REVISION", r.value("revision", ""));
        if (r.contains("operation")) set("RESPONSE_OPERATION", r.value("operation", ""));
      } else {
        set("RESPONSE_ID", body.value("id", ""));
        set("RESPONSE_REVISION", body.value("revision", ""));
      }
      break;
    case Op::comment:
      set("RESPONSE_COMMENT_ID", body.value("id", ""));
      break;
  }
}

// ---- loading ----

namespace {

std::optional<FieldTemplates> field_templates(const std::string& field, const YAML::Node& node,
                                              const std::string& what,
                                              rules::ConfigReader& reader) {
  FieldTemplates f;
  f.field = field;
  if (!valid_field_code(field)) {
    reader.error(node, "\"" + what + "\": \"" + field + "\" is not a kintone field code");
    return std::nullopt;
  }
  if (node.IsSequence()) {
    f.list = true;
    for (const auto& item : node) {
      auto t = reader.template_setting(item, what + "." + field, rules::Destination::text);
      if (!t) return std::nullopt;
      f.values.push_back(std::move(*t));
    }
    return f;
  }
  auto t = reader.template_setting(node, what + "." + field, rules::Destination::text);
  if (!t) return std::nullopt;
  f.values.push_back(std::move(*t));
  return f;
}

std::vector<FieldTemplates> field_map(const YAML::Node& node, const std::string& what,
                                      rules::ConfigReader& reader) {
  std::vector<FieldTemplates> out;
  if (!reader.expect_map(node, what)) return out;
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string field = it->first.as<std::string>("");
    // The RemoTEL bodies write {"電話番号": {"value": "{TEL}"}}; accept that shape too.
    YAML::Node value = it->second;
    if (value.IsMap()) {
      if (value.size() == 1 && value["value"]) {
        value = value["value"];
      } else {
        reader.error(value, "\"" + what + "." + field + "\": a value, a list, or {value: ...}");
        continue;
      }
    }
    if (auto f = field_templates(field, value, what, reader)) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace

std::shared_ptr<const rules::Action> load_action(const YAML::Node& node,
                                                 rules::ConfigReader& reader,
                                                 const std::string& rule_name) {
  const std::string ctx = "kintone";
  if (!reader.expect_map(node, ctx)) return nullptr;
  const std::vector<std::string> all_keys = {
      "connection", "app", "op",         "where",    "phone",  "query",   "fields",   "order_by",
      "limit",      "id",  "update_key", "revision", "record", "comment", "mentions", "results"};
  std::set<std::string> present = reader.check_keys(node, all_keys, ctx);
  std::size_t before = reader.error_count();
  ActionSpec s;

  const auto* settings = dynamic_cast<const KintoneSettings*>(reader.section("kintone"));
  // Without the section the action is still read through, so every mistake in it is reported
  // at once (and the schema learns each key's kind).
  if (!settings) {
    reader.error(node, "rule \"" + rule_name +
                           "\": a kintone action needs a top-level \"kintone:\" section with "
                           "connections");
  }
  if (auto n = node["connection"]) {
    if (auto v = reader.string_setting(n, ctx + ".connection"); v && settings) {
      if (const ConnectionSpec* c = settings->connection(*v)) {
        s.connection_name = *v;
        s.connection = *c;
      } else {
        reader.error(n, "unknown kintone connection \"" + *v + "\"; known: " + settings->names());
      }
    }
  } else if (!settings) {
  } else if (settings->connections.size() == 1) {
    s.connection_name = settings->connections.begin()->first;
    s.connection = settings->connections.begin()->second;
  } else {
    reader.error(node,
                 "\"kintone.connection\" is required when there are several connections "
                 "(known: " +
                     settings->names() + ")");
  }
  if (auto n = reader.required(node, "app", ctx))
    if (auto v = reader.integer(n, ctx + ".app", 1, 1000000000)) s.app = static_cast<int>(*v);
  std::string op_name = "find";
  if (auto n = node["op"])
    if (auto v = reader.choice(n, ctx + ".op",
                               {"find", "get", "create", "update", "upsert", "comment", "history"}))
      op_name = *v;
  static const std::map<std::string, Op> ops = {{"find", Op::find},      {"get", Op::get},
                                                {"create", Op::create},  {"update", Op::update},
                                                {"upsert", Op::upsert},  {"comment", Op::comment},
                                                {"history", Op::history}};
  s.op = ops.at(op_name);

  // Which keys each operation reads; any other is a mistake worth reporting.
  static const std::map<Op, std::vector<std::string>> used = {
      {Op::find, {"where", "phone", "query", "fields", "order_by", "limit", "results"}},
      {Op::get, {"id", "results"}},
      {Op::create, {"record"}},
      {Op::update, {"id", "update_key", "revision", "record"}},
      {Op::upsert, {"update_key", "record"}},
      {Op::comment, {"id", "comment", "mentions"}},
      {Op::history, {"update_key", "record"}}};
  const auto& mine = used.at(s.op);
  for (const auto& key : present) {
    if (key == "connection" || key == "app" || key == "op") continue;
    if (std::find(mine.begin(), mine.end(), key) == mine.end()) {
      std::string allowed;
      for (const auto& k : mine) allowed += (allowed.empty() ? "" : ", ") + k;
      reader.error(node[key], "\"kintone." + key + "\" is not used by op " + op_name +
                                  " (it reads: " + allowed + ")");
    }
  }
  auto tmpl = [&](const char* key) -> std::optional<rules::Template> {
    if (auto n = node[key])
      return reader.template_setting(n, ctx + "." + key, rules::Destination::text);
    return std::nullopt;
  };
  auto require = [&](const char* key) {
    if (!node[key]) reader.error(node, "op " + op_name + " needs \"kintone." + key + "\"");
  };

  if (auto n = node["where"]) s.where = field_map(n, ctx + ".where", reader);
  if (auto n = node["phone"]) {
    if (reader.expect_map(n, ctx + ".phone")) {
      reader.check_keys(n, {"fields", "value"}, ctx + ".phone");
      if (auto f = reader.required(n, "fields", ctx + ".phone")) {
        std::vector<std::string> fields;
        if (f.IsScalar())
          fields.push_back(f.Scalar());
        else if (reader.expect_list(f, ctx + ".phone.fields"))
          for (const auto& x : f) fields.push_back(x.as<std::string>(""));
        for (const auto& x : fields)
          if (!valid_field_code(x))
            reader.error(f, "\"kintone.phone.fields\": \"" + x + "\" is not a kintone field code");
        s.phone_fields = fields;
      }
      if (auto v = n["value"])
        s.phone_value = reader.template_setting(v, ctx + ".phone.value", rules::Destination::text);
      else
        s.phone_value = reader.template_setting(YAML::Node("{TEL}"), ctx + ".phone.value",
                                                rules::Destination::text);
    }
  }
  s.query = tmpl("query");
  if (auto n = node["fields"]) {
    if (reader.expect_list(n, ctx + ".fields")) {
      for (const auto& f : n) {
        std::string code = f.as<std::string>("");
        if (!valid_field_code(code))
          reader.error(f, "\"kintone.fields\": \"" + code + "\" is not a kintone field code");
        s.fields.push_back(code);
        if (is_variable_name(code)) s.results.emplace_back(upper(code), code);
      }
    }
  }
  if (auto n = node["order_by"])
    if (auto v = reader.string_setting(n, ctx + ".order_by")) s.order_by = *v;
  if (auto n = node["limit"])
    if (auto v = reader.integer(n, ctx + ".limit", 1, kMaxRecordsPerRequest))
      s.limit = static_cast<int>(*v);
  s.id = tmpl("id");
  s.revision = tmpl("revision");
  if (auto n = node["update_key"]) {
    if (reader.expect_map(n, ctx + ".update_key")) {
      reader.check_keys(n, {"field", "value"}, ctx + ".update_key");
      if (auto f = reader.required(n, "field", ctx + ".update_key")) {
        if (auto v = reader.string_setting(f, ctx + ".update_key.field")) {
          if (!valid_field_code(*v))
            reader.error(
                f, "\"kintone.update_key.field\": \"" + *v + "\" is not a kintone field code");
          s.key_field = *v;
        }
      }
      if (auto v = reader.required(n, "value", ctx + ".update_key"))
        s.key_value =
            reader.template_setting(v, ctx + ".update_key.value", rules::Destination::text);
    }
  }
  if (auto n = node["record"]) s.record = field_map(n, ctx + ".record", reader);
  s.comment = tmpl("comment");
  if (auto n = node["mentions"]) {
    if (reader.expect_list(n, ctx + ".mentions")) {
      for (const auto& m : n) {
        std::string type = "USER";
        if (m.IsMap()) {
          reader.check_keys(m, {"code", "type"}, ctx + ".mentions");
          if (auto t = m["type"])
            if (auto v =
                    reader.choice(t, ctx + ".mentions.type", {"USER", "GROUP", "ORGANIZATION"}))
              type = *v;
        }
        // Bound once: assigning to a YAML::Node would overwrite the node it refers to.
        const YAML::Node code =
            m.IsMap() ? reader.required(m, "code", ctx + ".mentions") : YAML::Node(m);
        if (!code) continue;
        if (auto t =
                reader.template_setting(code, ctx + ".mentions.code", rules::Destination::text))
          s.mentions.emplace_back(std::move(*t), type);
      }
      if (s.mentions.size() > 10)
        reader.error(n, "\"kintone.mentions\": kintone accepts at most 10, got " +
                            std::to_string(s.mentions.size()));
    }
  }
  if (auto n = node["results"]) {
    if (reader.expect_map(n, ctx + ".results")) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        std::string suffix = it->first.as<std::string>("");
        if (!is_variable_name(suffix))
          reader.error(it->first, "\"kintone.results\": \"" + suffix +
                                      "\" must be a variable name (A-Z, a-z, 0-9, _)");
        auto field = reader.string_setting(it->second, ctx + ".results." + suffix);
        if (field && !valid_field_code(*field))
          reader.error(it->second, "\"kintone.results." + suffix + "\": \"" + *field +
                                       "\" is not a kintone field code");
        if (field) {
          s.results.emplace_back(suffix, *field);
          if (!s.fields.empty() &&
              std::find(s.fields.begin(), s.fields.end(), *field) == s.fields.end())
            s.fields.push_back(*field);
        }
      }
    }
  }

  switch (s.op) {
    case Op::find:
      break;
    case Op::get:
      require("id");
      break;
    case Op::create:
    case Op::history:
      require("record");
      break;
    case Op::update:
      require("record");
      if (static_cast<bool>(node["id"]) == static_cast<bool>(node["update_key"]))
        reader.error(node,
                     "op update needs exactly one of \"kintone.id\" and \"kintone.update_key\"");
      break;
    case Op::upsert:
      require("update_key");
      require("record");
      break;
    case Op::comment:
      require("id");
      require("comment");
      break;
  }
  if (reader.error_count() != before) return nullptr;
  return std::make_shared<KintoneAction>(std::move(s));
}

}  // namespace callbridge::kintone
