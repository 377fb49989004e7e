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
  out.note_undefined(report);

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

}  // namespace callbridge::kintone
