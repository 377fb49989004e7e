#include "connectors/escalation/config.h"

#include <yaml-cpp/yaml.h>

#include "connectors/escalation/action.h"
#include "rules/config_reader.h"

namespace callbridge::escalation {

namespace {

using rules::ConfigReader;

std::string join_keys(const auto& map) {
  std::string out;
  for (const auto& [key, value] : map) out += (out.empty() ? "" : ", ") + key;
  return out.empty() ? "(none)" : out;
}

std::optional<std::chrono::milliseconds> seconds_setting(ConfigReader& reader,
                                                         const YAML::Node& map,
                                                         const std::string& key,
                                                         const std::string& context, long long min,
                                                         long long max) {
  YAML::Node node = map[key];
  if (!node) return std::nullopt;
  auto value = reader.integer(node, context + "." + key, min, max);
  if (!value) return std::nullopt;
  return std::chrono::seconds(*value);
}

std::optional<KeyResponse> load_response(ConfigReader& reader, const YAML::Node& node,
                                         const std::string& what) {
  // (Never assign one YAML::Node to another: yaml-cpp then overwrites the referenced node.)
  KeyResponse response;
  if (node.IsMap()) {
    reader.check_keys(node, {"type", "message"}, what);
    if (YAML::Node m = node["message"]) {
      auto message = reader.scalar(m, what + ".message");
      if (!message) return std::nullopt;
      response.message = *message;
    }
  }
  const YAML::Node type_node = node.IsMap() ? reader.required(node, "type", what) : node;
  if (!type_node) return std::nullopt;
  auto type = reader.choice(type_node, what + ".type",
                            {"terminate", "continue", "leave", "終了", "継続", "離脱"});
  if (!type) return std::nullopt;
  response.reaction = *reaction_from_string(*type);
  return response;
}

// `responses: {1: {type: terminate, message: ...}, 2: continue}`.
bool load_responses(ConfigReader& reader, const YAML::Node& node, const std::string& what,
                    Guidance& guidance) {
  if (!reader.expect_map(node, what)) return false;
  bool ok = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string key = it->first.Scalar();
    if (key.size() != 1 || key[0] < '1' || key[0] > '9') {
      reader.error(it->first, what + ": keys are 1-9, got \"" + key + "\"");
      ok = false;
      continue;
    }
    auto response = load_response(reader, it->second, what + "." + key);
    if (!response) {
      ok = false;
      continue;
    }
    guidance.responses[key[0] - '0'] = *response;
  }
  if (ok) {
    if (auto e = validate(guidance); !e.empty()) {
      reader.error(node, what + ": " + e);
      ok = false;
    }
  }
  return ok;
}

std::optional<Guidance> load_guidance(ConfigReader& reader, const YAML::Node& node,
                                      const std::string& what, bool inline_spec) {
  if (!reader.expect_map(node, what)) return std::nullopt;
  std::vector<std::string> keys = {"name", "message", "responses"};
  if (!inline_spec) keys.insert(keys.begin(), "id");
  reader.check_keys(node, keys, what);
  Guidance g;
  bool ok = true;
  if (!inline_spec) {
    auto id = reader.scalar(reader.required(node, "id", what), what + ".id");
    if (!id) return std::nullopt;
    g.id = *id;
  }
  if (YAML::Node n = node["name"]) {
    auto name = reader.scalar(n, what + ".name");
    ok = ok && name;
    if (name) g.name = *name;
  }
  auto message = reader.scalar(reader.required(node, "message", what), what + ".message");
  if (!message)
    ok = false;
  else
    g.message = *message;
  YAML::Node responses = reader.required(node, "responses", what);
  if (!responses || !load_responses(reader, responses, what + ".responses", g)) ok = false;
  if (g.name.empty()) g.name = g.id;
  if (!ok) return std::nullopt;
  return g;
}

// Call-flow contacts: ids of `contacts`, or (inline specs) `{name, phone}` maps.
bool load_flow_contacts(ConfigReader& reader, const YAML::Node& node, const std::string& what,
                        const std::map<std::string, Contact, std::less<>>& known, bool allow_inline,
                        CallFlow& flow) {
  if (!reader.expect_list(node, what)) return false;
  bool ok = true;
  int n = 0;
  for (const auto& item : node) {
    ++n;
    std::string where = what + "[" + std::to_string(n - 1) + "]";
    if (item.IsMap() && allow_inline) {
      reader.check_keys(item, {"name", "phone"}, where);
      auto phone = reader.scalar(reader.required(item, "phone", where), where + ".phone");
      std::string name;
      if (YAML::Node nn = item["name"]) {
        auto v = reader.scalar(nn, where + ".name");
        if (v) name = *v;
      }
      if (!phone) {
        ok = false;
        continue;
      }
      flow.contacts.push_back(
          Contact{"inline-" + std::to_string(n), name.empty() ? *phone : name, *phone});
      continue;
    }
    auto id = reader.scalar(item, where);
    if (!id) {
      ok = false;
      continue;
    }
    auto it = known.find(*id);
    if (it == known.end()) {
      reader.error(item, where + ": unknown contact \"" + *id + "\"; known: " + join_keys(known));
      ok = false;
      continue;
    }
    flow.contacts.push_back(it->second);
  }
  if (ok && flow.contacts.empty()) {
    reader.error(node, what + ": a call flow needs at least one contact");
    ok = false;
  }
  return ok;
}

std::optional<CallFlow> load_callflow(ConfigReader& reader, const YAML::Node& node,
                                      const std::string& what,
                                      const std::map<std::string, Contact, std::less<>>& known,
                                      bool inline_spec) {
  if (!reader.expect_map(node, what)) return std::nullopt;
  std::vector<std::string> keys = {"name", "loop_limit", "contacts"};
  if (!inline_spec) keys.insert(keys.begin(), "id");
  reader.check_keys(node, keys, what);
  CallFlow f;
  bool ok = true;
  if (!inline_spec) {
    auto id = reader.scalar(reader.required(node, "id", what), what + ".id");
    if (!id) return std::nullopt;
    f.id = *id;
  }
  if (YAML::Node n = node["name"]) {
    auto name = reader.scalar(n, what + ".name");
    if (name)
      f.name = *name;
    else
      ok = false;
  }
  if (YAML::Node n = node["loop_limit"]) {
    auto loops = reader.integer(n, what + ".loop_limit", 1, 100);
    if (loops)
      f.loop_limit = static_cast<int>(*loops);
    else
      ok = false;
  }
  YAML::Node contacts = reader.required(node, "contacts", what);
  if (!contacts || !load_flow_contacts(reader, contacts, what + ".contacts", known, inline_spec, f))
    ok = false;
  if (f.name.empty()) f.name = f.id;
  if (!ok) return std::nullopt;
  return f;
}

bool load_dialer(ConfigReader& reader, const YAML::Node& node, EscalationSettings& section) {
  const std::string what = "escalation.dialer";
  if (!reader.expect_map(node, what)) return false;
  auto type = reader.choice(reader.required(node, "type", what), what + ".type",
                            {"simulate", "webhook", "pigeon"});
  if (!type) return false;
  DialerConfig& d = section.dialer;
  d.type = *type == "webhook"  ? DialerType::webhook
           : *type == "pigeon" ? DialerType::pigeon
                               : DialerType::simulate;
  bool ok = true;
  if (d.type == DialerType::simulate) {
    reader.check_keys(node, {"type", "script", "default"}, what);
    if (YAML::Node def = node["default"]) {
      auto text = reader.scalar(def, what + ".default");
      std::string error;
      auto answer = text ? ScriptedAnswer::parse(*text, error) : std::nullopt;
      if (text && !answer) reader.error(def, what + ".default: " + error);
      if (answer)
        d.fallback = *answer;
      else
        ok = false;
    }
    if (YAML::Node script = node["script"]) {
      if (!reader.expect_map(script, what + ".script")) return false;
      for (auto it = script.begin(); it != script.end(); ++it) {
        std::string contact = it->first.Scalar();
        std::string where = what + ".script." + contact;
        if (!section.contacts.count(contact)) {
          reader.error(it->first, where + ": unknown contact \"" + contact +
                                      "\"; known: " + join_keys(section.contacts));
          ok = false;
          continue;
        }
        const YAML::Node value = it->second;  // it-> is a proxy: do not range over it
        std::vector<YAML::Node> items;
        if (value.IsSequence())
          for (const auto& item : value) items.push_back(item);
        else
          items.push_back(value);
        std::vector<ScriptedAnswer> answers;
        for (const auto& item : items) {
          auto text = reader.scalar(item, where);
          if (!text) {
            ok = false;
            continue;
          }
          std::string error;
          auto answer = ScriptedAnswer::parse(*text, error);
          if (!answer) {
            reader.error(item, where + ": " + error);
            ok = false;
            continue;
          }
          answers.push_back(*answer);
        }
        d.script[contact] = std::move(answers);
      }
    }
  } else if (d.type == DialerType::webhook) {
    reader.check_keys(node, {"type", "url", "headers", "timeout", "callback_base"}, what);
    auto url = reader.string_setting(reader.required(node, "url", what), what + ".url");
    if (url)
      d.webhook.url = *url;
    else
      ok = false;
    if (url && !rules::is_http_url(*url)) {
      reader.error(node["url"], what + ".url: must start with http:// or https://");
      ok = false;
    }
    if (YAML::Node headers = node["headers"]) {
      if (reader.expect_map(headers, what + ".headers")) {
        for (auto it = headers.begin(); it != headers.end(); ++it) {
          auto value = reader.string_setting(it->second, what + ".headers." + it->first.Scalar());
          if (value)
            d.webhook.headers.emplace_back(it->first.Scalar(), *value);
          else
            ok = false;
        }
      } else {
        ok = false;
      }
    }
    if (auto t = seconds_setting(reader, node, "timeout", what, 1, 300)) d.webhook.timeout = *t;
    if (YAML::Node cb = node["callback_base"]) {
      auto base = reader.string_setting(cb, what + ".callback_base");
      if (base)
        d.webhook.callback_base = *base;
      else
        ok = false;
    }
  } else {
    reader.check_keys(node, {"type", "url", "token", "timeout"}, what);
    auto url = reader.string_setting(reader.required(node, "url", what), what + ".url");
    if (url)
      d.pigeon.base_url = *url;
    else
      ok = false;
    if (url && !rules::is_http_url(*url)) {
      reader.error(node["url"], what + ".url: must start with http:// or https://");
      ok = false;
    }
    auto token = reader.secret_setting(reader.required(node, "token", what), what + ".token");
    if (token)
      d.pigeon.token = *token;
    else
      ok = false;
    if (auto t = seconds_setting(reader, node, "timeout", what, 1, 300)) d.pigeon.timeout = *t;
  }
  return ok;
}

}  // namespace

std::string_view to_string(DialerType type) {
  switch (type) {
    case DialerType::simulate:
      return "simulate";
    case DialerType::webhook:
      return "webhook";
    case DialerType::pigeon:
      return "pigeon";
  }
  return "simulate";
}

std::shared_ptr<const rules::Section> load_section(const YAML::Node& node, ConfigReader& reader) {
  const std::string what = "escalation";
  if (!reader.expect_map(node, what)) return nullptr;
  std::size_t errors_before = reader.error_count();
  reader.check_keys(node,
                    {"contacts", "callflows", "guidances", "dialer", "ring_timeout",
                     "pause_between_calls", "pause_between_loops", "attempt_timeout",
                     "poll_interval", "poll_max_interval", "workers", "history_limit", "api"},
                    what);
  auto section = std::make_shared<EscalationSettings>();
  if (YAML::Node contacts = node["contacts"]; contacts && reader.expect_list(contacts, what)) {
    int n = 0;
    for (const auto& item : contacts) {
      std::string where = what + ".contacts[" + std::to_string(n++) + "]";
      if (!reader.expect_map(item, where)) continue;
      reader.check_keys(item, {"id", "name", "phone"}, where);
      auto id = reader.scalar(reader.required(item, "id", where), where + ".id");
      auto phone = reader.string_setting(reader.required(item, "phone", where), where + ".phone");
      std::optional<std::string> name;
      if (YAML::Node nn = item["name"]) name = reader.scalar(nn, where + ".name");
      if (!id || !phone) continue;
      if (section->contacts.count(*id)) {
        reader.error(item["id"], where + ".id: duplicate contact \"" + *id + "\"");
        continue;
      }
      section->contacts[*id] = Contact{*id, name.value_or(*id), *phone};
    }
  }
  if (YAML::Node flows = node["callflows"]; flows && reader.expect_list(flows, what)) {
    int n = 0;
    for (const auto& item : flows) {
      std::string where = what + ".callflows[" + std::to_string(n++) + "]";
      auto flow = load_callflow(reader, item, where, section->contacts, false);
      if (!flow) continue;
      if (section->callflows.count(flow->id)) {
        reader.error(item["id"], where + ".id: duplicate call flow \"" + flow->id + "\"");
        continue;
      }
      section->callflows[flow->id] = *flow;
    }
  }
  if (YAML::Node guidances = node["guidances"]; guidances && reader.expect_list(guidances, what)) {
    int n = 0;
    for (const auto& item : guidances) {
      std::string where = what + ".guidances[" + std::to_string(n++) + "]";
      auto g = load_guidance(reader, item, where, false);
      if (!g) continue;
      if (section->guidances.count(g->id)) {
        reader.error(item["id"], where + ".id: duplicate guidance \"" + g->id + "\"");
        continue;
      }
      section->guidances[g->id] = *g;
    }
  }
  if (YAML::Node dialer = node["dialer"]) load_dialer(reader, dialer, *section);
  EngineSettings& e = section->engine;
  if (auto v = seconds_setting(reader, node, "ring_timeout", what, 5, 300)) e.ring_timeout = *v;
  if (auto v = seconds_setting(reader, node, "pause_between_calls", what, 0, 3600))
    e.pause_between_calls = *v;
  if (auto v = seconds_setting(reader, node, "pause_between_loops", what, 0, 86400))
    e.pause_between_loops = *v;
  if (auto v = seconds_setting(reader, node, "attempt_timeout", what, 10, 86400))
    e.attempt_timeout = *v;
  if (auto v = seconds_setting(reader, node, "poll_interval", what, 1, 3600)) e.poll_interval = *v;
  if (auto v = seconds_setting(reader, node, "poll_max_interval", what, 1, 3600))
    e.poll_max_interval = *v;
  if (e.poll_max_interval < e.poll_interval) e.poll_max_interval = e.poll_interval;
  if (YAML::Node w = node["workers"])
    if (auto v = reader.integer(w, what + ".workers", 1, 64))
      section->workers = static_cast<int>(*v);
  if (YAML::Node h = node["history_limit"])
    if (auto v = reader.integer(h, what + ".history_limit", 0, 1000000))
      e.history_limit = static_cast<std::size_t>(*v);
  if (YAML::Node a = node["api"])
    if (auto v = reader.boolean(a, what + ".api")) section->api = *v;
  if (reader.error_count() != errors_before) return nullptr;
  return section;
}

std::shared_ptr<const rules::Action> load_action(const YAML::Node& node, ConfigReader& reader,
                                                 const std::string& rule_name) {
  const std::string what = "escalate";
  if (!reader.expect_map(node, what)) return nullptr;
  std::size_t errors_before = reader.error_count();
  reader.check_keys(node, {"callflow", "guidance", "parameters"}, what);
  auto section = reader.section<EscalationSettings>("escalation");
  if (!section) {
    // A section with errors loads as nothing; its own errors say why.
    if (errors_before == 0)
      reader.error(node, "escalate: needs an `escalation:` section (contacts, call flows, dialer)");
    return nullptr;
  }
  bool remote = section->dialer.type == DialerType::pigeon;
  CallFlow flow;
  Guidance guidance;
  YAML::Node flow_node = reader.required(node, "callflow", what);
  if (flow_node && flow_node.IsMap()) {
    if (auto f = load_callflow(reader, flow_node, what + ".callflow", section->contacts, true))
      flow = *f;
  } else if (flow_node) {
    if (auto id = reader.scalar(flow_node, what + ".callflow")) {
      auto it = section->callflows.find(*id);
      if (it != section->callflows.end())
        flow = it->second;
      else if (remote)
        flow.id = *id;  // one of Kompira Pigeon's call flows
      else
        reader.error(flow_node, "escalate.callflow: unknown call flow \"" + *id +
                                    "\"; known: " + join_keys(section->callflows));
    }
  }
  YAML::Node guidance_node = reader.required(node, "guidance", what);
  if (guidance_node && guidance_node.IsMap()) {
    if (auto g = load_guidance(reader, guidance_node, what + ".guidance", true)) guidance = *g;
  } else if (guidance_node) {
    if (auto id = reader.scalar(guidance_node, what + ".guidance")) {
      auto it = section->guidances.find(*id);
      if (it != section->guidances.end())
        guidance = it->second;
      else if (remote)
        guidance.id = *id;
      else
        reader.error(guidance_node, "escalate.guidance: unknown guidance \"" + *id +
                                        "\"; known: " + join_keys(section->guidances));
    }
  }
  std::vector<EscalateAction::ParameterSpec> parameters;
  if (YAML::Node p = node["parameters"]; p && reader.expect_map(p, what + ".parameters")) {
    for (auto it = p.begin(); it != p.end(); ++it) {
      std::string name = it->first.Scalar();
      auto t = reader.template_setting(it->second, what + ".parameters." + name,
                                       rules::Destination::text);
      if (t) parameters.push_back({name, *t});
    }
  }
  if (reader.error_count() != errors_before) return nullptr;
  return std::make_shared<EscalateAction>(rule_name, std::move(flow), std::move(guidance),
                                          std::move(parameters));
}

}  // namespace callbridge::escalation
