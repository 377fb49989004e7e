#include "bridge/console_routes.h"

#include <openssl/crypto.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "bridge/action_record.h"
#include "bridge/console_phone.h"
#include "bridge/event_input.h"
#include "bridge/history.h"
#include "bridge/replay.h"
#include "console/assets.h"
#include "log/log.h"

namespace callbridge::bridge {

namespace {

constexpr std::string_view kCookie = "callbridge_console";

std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void send_json(rules::HttpResponse& res, int status, const nlohmann::ordered_json& body) {
  res.status = status;
  res.content_type = "application/json";
  res.body = dump(body);
}

std::string_view content_type_of(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

const console::Asset* find_asset(std::string_view name) {
  for (const auto& a : console::assets())
    if (a.name == name) return &a;
  return nullptr;
}

std::string cookie_value(const rules::HttpRequest& req, std::string_view name) {
  std::string header = req.header("cookie");
  std::string_view rest = header;
  while (!rest.empty()) {
    auto semi = rest.find(';');
    std::string_view part = rest.substr(0, semi);
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    auto eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name)
      return std::string(part.substr(eq + 1));
  }
  return {};
}

bool same_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string presented_token(const rules::HttpRequest& req) {
  std::string auth = req.header("authorization");
  if (auth.size() > 7 && strncasecmp(auth.c_str(), "Bearer ", 7) == 0) return auth.substr(7);
  return req.header("x-callbridge-token");
}

std::int64_t to_int(const std::string& text, std::int64_t fallback = 0) {
  try {
    std::size_t used = 0;
    long long v = std::stoll(text, &used);
    return used == text.size() ? v : fallback;
  } catch (...) {
    return fallback;
  }
}

nlohmann::ordered_json action_json(const ActionRecord& a, const rules::SecretSet& secrets) {
  nlohmann::ordered_json j;
  j["rule"] = a.rule;
  j["attempt"] = a.attempt;
  j["state"] = to_string(a.state);
  j["started_at"] = a.started_at_ms ? ms_to_iso(a.started_at_ms) : "";
  j["status"] = a.status;
  j["latency_ms"] = static_cast<double>(a.latency_us) / 1000.0;
  j["gate"] = secrets.redact(a.gate);
  j["error"] = secrets.redact(a.error);
  j["response"] = secrets.redact(a.response);
  return j;
}

// A template shown with each variable as {{NAME}} and secrets as [secret].
std::string shown(const rules::Template& t) {
  rules::Variables vars;
  for (const auto& name : t.variables()) vars[name] = "{{" + name + "}}";
  rules::RenderReport report;
  return t.render(vars, report, true);
}

}  // namespace

struct Console::Principal {
  std::string name;
  ConsoleRole role = ConsoleRole::viewer;
  std::string csrf;  // empty for a bridge token, which needs none
  bool token = false;
};

void add_console_headers(rules::HttpResponse& res) {
  res.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; script-src 'self'; style-src 'self'; img-src "
                           "'self' data:; connect-src 'self'; object-src 'none'; base-uri "
                           "'none'; form-action 'self'; frame-ancestors 'none'");
  res.headers.emplace_back("X-Frame-Options", "DENY");
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  res.headers.emplace_back("Referrer-Policy", "no-referrer");
  res.headers.emplace_back("Cache-Control", "no-store");
}

Console::Console(ConsoleContext context) : context_(std::move(context)) {}

void Console::add_routes(std::vector<rules::Route>& routes) {
  routes_ = &routes;
  auto self = shared_from_this();
  auto handler = [self](const rules::HttpRequest& req, rules::HttpResponse& res) {
    self->handle(req, res);
  };
  for (const char* method : {"GET", "POST"}) {
    routes.push_back({method, "/console(/.*)?", rules::RouteAuth::none, handler});
  }
  routes.push_back({"GET", "/", rules::RouteAuth::none, handler});
}

std::optional<Console::Principal> Console::authenticate(const rules::HttpRequest& req) {
  auto cfg = context_.config.get();
  std::string token = presented_token(req);
  if (!token.empty()) {
    bool ok = false;
    for (const auto& t : cfg->server.tokens) ok |= same_secret(token, t);
    if (ok) return Principal{"token", ConsoleRole::operator_, "", true};
    return std::nullopt;
  }
  std::string session_id = cookie_value(req, kCookie);
  if (session_id.empty()) return std::nullopt;
  auto session = sessions_.find(session_id);
  if (!session) return std::nullopt;
  // A user removed from the file (or made a viewer) by a reload loses what was taken away.
  auto settings = cfg->section<ConsoleSettings>("console");
  const ConsoleUser* user = settings ? settings->user(session->user) : nullptr;
  if (!user) {
    sessions_.erase(session_id);
    return std::nullopt;
  }
  ConsoleRole role = user->role == ConsoleRole::viewer ? ConsoleRole::viewer : session->role;
  return Principal{session->user, role, session->csrf, false};
}

void Console::handle(const rules::HttpRequest& req, rules::HttpResponse& res) {
  add_console_headers(res);
  const std::string& path = req.path;
  if (path == "/" || path == "/console") {
    res.status = 302;
    res.headers.emplace_back("Location", "/console/");
    res.content_type = "text/plain";
    res.body = "/console/\n";
    return;
  }
  if (path == "/console/login") {
    if (req.method == "POST") return login(req, res);
    const console::Asset* page = find_asset("login.html");
    res.content_type = std::string(content_type_of("login.html"));
    res.body = std::string(page ? page->bytes : "");
    return;
  }
  if (path.rfind("/console/api/", 0) == 0 || path == "/console/logout") {
    auto who = authenticate(req);
    if (!who)
      return res.error(401, rules::ErrorCode::unauthorized, "sign in, or send a bridge token");
    if (req.method == "POST" && !who->token && !same_secret(req.header("x-csrf-token"), who->csrf))
      return res.error(403, rules::ErrorCode::csrf_required,
                       "a state-changing request needs the session's X-CSRF-Token header");
    if (path == "/console/logout") {
      sessions_.erase(cookie_value(req, kCookie));
      res.headers.emplace_back(
          "Set-Cookie", std::string(kCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
      return send_json(res, 200, {{"signed_out", true}});
    }
    try {
      return api(req, res, *who);
    } catch (const std::exception& e) {
      log::write(log::Level::error, "console request failed",
                 {{"path", path}, {"error", e.what()}});
      return res.error(500, rules::ErrorCode::internal, "internal error");
    }
  }
  if (req.method != "GET") return res.error(404, rules::ErrorCode::not_found, "no such endpoint");
  std::string name =
      path == "/console/" ? "index.html" : path.substr(std::string("/console/").size());
  if (name == "index.html" && !authenticate(req)) {
    res.status = 302;
    res.headers.emplace_back("Location", "/console/login");
    res.content_type = "text/plain";
    res.body = "/console/login\n";
    return;
  }
  const console::Asset* asset = find_asset(name);
  if (!asset || name == "login.html")
    return res.error(404, rules::ErrorCode::not_found, "no such page");
  res.content_type = std::string(content_type_of(name));
  res.body = std::string(asset->bytes);
}

void Console::login(const rules::HttpRequest& req, rules::HttpResponse& res) {
  std::string name, password;
  if (req.header("content-type").find("json") != std::string::npos) {
    auto j = nlohmann::json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.value("name", nlohmann::json()).is_string() ||
        !j.value("password", nlohmann::json()).is_string())
      return res.error(400, rules::ErrorCode::invalid_json,
                       "send {\"name\": ..., \"password\": ...}");
    name = j["name"];
    password = j["password"];
  } else {
    name = req.param("name");
    password = req.param("password");
  }
  std::string by_address = "addr:" + req.remote_addr;
  std::string by_name = "user:" + name;
  auto wait = std::max(limiter_.wait(by_address), limiter_.wait(by_name));
  if (wait.count() > 0) {
    log::write(log::Level::warn, "console sign-in refused: too many failures",
               {{"user", name}, {"remote_addr", req.remote_addr}});
    res.headers.emplace_back("Retry-After", std::to_string(wait.count()));
    return res.error(
        429, rules::ErrorCode::too_many_attempts,
        "too many failed sign-ins; try again in " + std::to_string(wait.count()) + " s");
  }
  auto cfg = context_.config.get();
  auto settings = cfg->section<ConsoleSettings>("console");
  const ConsoleUser* user = settings ? settings->user(name) : nullptr;
  // An unknown name costs the same hashing as a wrong password, so timing tells no names.
  static const std::string kDummy = hash_password("-", kDefaultPasswordIterations);
  bool ok = verify_password(password, user ? user->password_hash : kDummy) && user;
  if (!ok) {
    limiter_.failed(by_address);
    limiter_.failed(by_name);
    log::write(log::Level::warn, "console sign-in failed",
               {{"user", name}, {"remote_addr", req.remote_addr}});
    return res.error(401, rules::ErrorCode::unauthorized, "wrong name or password");
  }
  limiter_.succeeded(by_address);
  limiter_.succeeded(by_name);
  auto lifetime = settings->session_lifetime();
  std::string token = sessions_.create(user->name, user->role, lifetime);
  // Max-Age in whole seconds, rounded up: the server's expiry is what counts.
  std::string cookie = std::string(kCookie) + "=" + token +
                       "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                       std::to_string((lifetime.count() + 999) / 1000);
  if (!cfg->server.tls_cert_file.empty()) cookie += "; Secure";
  res.headers.emplace_back("Set-Cookie", cookie);
  log::write(log::Level::info, "console sign-in",
             {{"user", user->name}, {"remote_addr", req.remote_addr}});
  auto session = sessions_.find(token);
  send_json(res, 200,
            {{"user", user->name}, {"role", to_string(user->role)}, {"csrf", session->csrf}});
}

void Console::api(const rules::HttpRequest& req, rules::HttpResponse& res, const Principal& who) {
  std::string route = req.path.substr(std::string("/console/api/").size());
  bool post = req.method == "POST";
  auto operator_only = [&]() {
    if (who.role == ConsoleRole::operator_) return true;
    res.error(403, rules::ErrorCode::forbidden,
              "operators only: a viewer may look but not change anything");
    return false;
  };
  if (!post && route == "me") {
    nlohmann::ordered_json j;
    j["user"] = who.name;
    j["role"] = to_string(who.role);
    j["csrf"] = who.csrf;
    return send_json(res, 200, j);
  }
  if (!post && route == "calls") return calls(req, res);
  if (!post && route.rfind("calls/", 0) == 0) {
    bool found = false;
    std::string call_id = route.substr(6);
    std::string text =
        call_history(context_.journal, call_id, found, *context_.config.get()->secrets);
    if (!found) return res.error(404, rules::ErrorCode::not_found, "no such call");
    res.body = std::move(text);
    return;
  }
  if (!post && route == "failures") return failures(req, res);
  if (post && route == "replay") return operator_only() ? replay(req, res) : void();
  if (!post && route == "rules") return rules_in_force(res);
  if (post && route == "simulate") return simulate(req, res, who);
  if (route.rfind("route/", 0) == 0) return forward(req, res, who, route.substr(5));
  if (!post && route == "rules/validate") return validate(res, false);
  if (post && route == "rules/reload") return operator_only() ? validate(res, true) : void();
  if (!post && route == "overview") return overview(req, res);
  res.error(404, rules::ErrorCode::not_found, "no such endpoint");
}

void Console::calls(const rules::HttpRequest& req, rules::HttpResponse& res) {
  Journal::CallQuery q;
  std::string phone = req.param("phone");
  if (!phone.empty()) {
    auto key = console_phone_key(phone);
    if (!key) return send_json(res, 200, {{"calls", nlohmann::json::array()}, {"next", nullptr}});
    q.phone_key = *key;
  }
  q.call_id = req.param("call_id");
  q.from_ms = to_int(req.param("from"));
  q.to_ms = to_int(req.param("to"));
  q.event = req.param("event");
  q.rule = req.param("rule");
  q.outcome = req.param("outcome");
  static const std::vector<std::string> kOutcomes = {"",     "ok",      "failed",
                                                     "dead", "unknown", "running"};
  if (std::find(kOutcomes.begin(), kOutcomes.end(), q.outcome) == kOutcomes.end())
    return res.error(400, rules::ErrorCode::invalid_query,
                     "outcome must be one of ok, failed, dead, unknown, running");
  q.before_seq = to_int(req.param("before"));
  q.limit =
      static_cast<std::size_t>(std::clamp<std::int64_t>(to_int(req.param("limit"), 50), 1, 200));
  auto rows = context_.journal.search_calls(q);
  const auto& secrets = *context_.config.get()->secrets;
  nlohmann::ordered_json out;
  out["calls"] = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::ordered_json c;
    c["call_id"] = r.call_id;
    c["tel"] = secrets.redact(r.tel);
    c["event"] = r.event;
    c["first_at"] = ms_to_iso(r.first_at_ms);
    c["last_at"] = ms_to_iso(r.last_at_ms);
    c["events"] = r.events;
    c["outcome"] = r.outcome;
    out["calls"].push_back(std::move(c));
  }
  if (rows.size() == q.limit)
    out["next"] = rows.back().seq;
  else
    out["next"] = nullptr;
  send_json(res, 200, out);
}

void Console::failures(const rules::HttpRequest& req, rules::HttpResponse& res) {
  auto rows = context_.journal.failures(
      req.param("rule"), to_int(req.param("since")), to_int(req.param("before")),
      static_cast<std::size_t>(std::clamp<std::int64_t>(to_int(req.param("limit"), 100), 1, 500)));
  const auto& secrets = *context_.config.get()->secrets;
  nlohmann::ordered_json out;
  out["failures"] = nlohmann::json::array();
  for (const auto& r : rows) {
    auto j = action_json(r.action, secrets);
    j["event_id"] = r.event_id;
    j["call_id"] = r.call_id;
    j["event"] = r.event;
    j["id"] = r.rowid;
    out["failures"].push_back(std::move(j));
  }
  out["next"] = rows.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(rows.back().rowid);
  send_json(res, 200, out);
}

// Re-runs dead-lettered and unknown actions with the rules now in force, as `callbridge replay`
// does: a success marks the old attempt `replayed`.
void Console::replay(const rules::HttpRequest& req, rules::HttpResponse& res) {
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (!body.is_object())
    return res.error(400, rules::ErrorCode::invalid_json, "send a JSON object");
  std::vector<std::pair<std::string, std::string>> targets;  // event_id, rule
  bool all = body.contains("since_ms");
  if (body.contains("targets") && body["targets"].is_array())
    for (const auto& t : body["targets"])
      if (t.is_object() && t.value("event_id", nlohmann::json()).is_string() &&
          t.value("rule", nlohmann::json()).is_string())
        targets.emplace_back(t["event_id"], t["rule"]);
  if (!all && targets.empty())
    return res.error(400, rules::ErrorCode::invalid_request,
                     "send {\"targets\": [{\"event_id\", \"rule\"}...]} or {\"since_ms\": T}");
  std::int64_t since =
      all && body["since_ms"].is_number_integer() ? body["since_ms"].get<std::int64_t>() : 0;

  std::lock_guard lock(replay_mutex_);
  auto config = context_.config.get();
  rules::Engine engine(config->rules, config->secrets, &context_.transport, context_.services);
  auto dead = context_.journal.failures("", since, 0, 100000);
  nlohmann::ordered_json out;
  out["results"] = nlohmann::json::array();
  for (const auto& row : dead) {
    const ActionRecord& a = row.action;
    if (!all && std::find(targets.begin(), targets.end(), std::make_pair(row.event_id, a.rule)) ==
                    targets.end())
      continue;
    nlohmann::ordered_json result;
    result["event_id"] = row.event_id;
    result["call_id"] = row.call_id;
    result["rule"] = a.rule;
    auto replayed = replay_action(context_.journal, engine, *config, a);
    if (replayed.kind != ReplayResult::Kind::ran) {
      result["state"] = "failed";
      result["error"] = replayed.error;
      out["results"].push_back(std::move(result));
      continue;
    }
    result["attempt"] = replayed.attempt;
    result["state"] = to_string(replayed.state);
    result["status"] = replayed.status;
    result["error"] = replayed.error;
    out["results"].push_back(std::move(result));
  }
  log::write(log::Level::info, "console replay",
             {{"actions", std::to_string(out["results"].size())}});
  send_json(res, 200, out);
}

void Console::rules_in_force(rules::HttpResponse& res) {
  auto config = context_.config.get();
  std::map<std::string, std::vector<const rules::Rule*>> by_event;
  for (const auto& r : config->rules->all())
    if (by_event.find(r.event) == by_event.end())
      by_event[r.event] = config->rules->for_event(r.event);
  nlohmann::ordered_json out;
  out["file"] = context_.config_path;
  out["events"] = nlohmann::json::array();
  for (const auto& [event, list] : by_event) {
    nlohmann::ordered_json e;
    e["event"] = event;
    e["rules"] = nlohmann::json::array();
    for (const auto* r : list) {
      nlohmann::ordered_json j;
      j["name"] = r->name;
      j["order"] = r->order;
      j["memo"] = r->memo;
      if (r->when) {
        j["gate"]["code"] = shown(r->when->code);
        j["gate"]["pattern"] = r->when->pattern.literal();
      }
      if (r->action) {
        j["action"] = r->action_key;
      } else {
        j["method"] = r->request.method;
        j["url"] = shown(r->request.url);
        j["body"] = shown(r->request.body);
      }
      j["location"] = std::to_string(r->location.line) + ":" + std::to_string(r->location.column);
      e["rules"].push_back(std::move(j));
    }
    out["events"].push_back(std::move(e));
  }
  send_json(res, 200, out);
}

// The rules an event would run, why, and their rendered requests, as `callbridge simulate`:
// a dry run for anyone; `"send": true` (operators only) performs the requests.
void Console::simulate(const rules::HttpRequest& req, rules::HttpResponse& res,
                       const Principal& who) {
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (!body.is_object())
    return res.error(400, rules::ErrorCode::invalid_json, "send a JSON object");
  bool send = body.value("send", false);
  if (send && who.role != ConsoleRole::operator_)
    return res.error(403, rules::ErrorCode::forbidden,
                     "operators only: a viewer may run dry simulations");
  nlohmann::json event = nlohmann::json::object();
  event["event"] = body.value("event", "");
  event["call_id"] = body.value("call_id", "console-simulation");
  if (body.contains("tel")) event["tel"] = body["tel"];
  if (body.contains("answered")) event["answered"] = body["answered"];
  if (body.contains("vars")) event["vars"] = body["vars"];
  std::string error;
  auto input = event_from_json(event, error);
  if (!input) return res.error(400, rules::ErrorCode::invalid_event, error);
  auto config = context_.config.get();
  rules::Engine engine(config->rules, config->secrets, send ? &context_.transport : nullptr,
                       send ? context_.services : nullptr);
  rules::CallContext call;
  auto outcomes = engine.run(*input, call);
  const auto& secrets = *config->secrets;
  nlohmann::ordered_json out;
  out["sent"] = send;
  out["rules"] = nlohmann::json::array();
  for (const auto& o : outcomes) {
    nlohmann::ordered_json j;
    j["rule"] = o.rule;
    j["runs"] = o.status != rules::RuleStatus::skipped || o.request.has_value();
    j["status"] = rules::to_string(o.status);
    j["gate"] = secrets.redact(o.gate);
    if (o.request)
      j["request"] = nlohmann::json::parse(request_to_json(*o.request), nullptr, false);
    if (o.response && o.response->kind == http::OutcomeKind::response) {
      j["response"]["status"] = o.response->status;
      j["response"]["body"] = secrets.redact(o.response->body.substr(0, 2000));
    }
    j["extracted"] = nlohmann::json::object();
    for (const auto& [name, value] : o.extracted) j["extracted"][name] = secrets.redact(value);
    j["undefined"] = o.undefined;
    j["error"] = secrets.redact(o.error);
    out["rules"].push_back(std::move(j));
  }
  if (send)
    log::write(log::Level::info, "console simulation sent",
               {{"user", who.name}, {"event", input->event}});
  send_json(res, 200, out);
}

// The connectors' token routes (escalation chains, the kintone directory...) for a session:
// /console/api/route/PATH answers as PATH would with a bridge token. Reading is for anyone;
// anything else for operators (with the CSRF token, checked before).
void Console::forward(const rules::HttpRequest& req, rules::HttpResponse& res, const Principal& who,
                      const std::string& path) {
  auto viewer_refused = [&] {
    res.error(403, rules::ErrorCode::forbidden,
              "operators only: a viewer may look but not change anything");
  };
  if (req.method != "GET" && who.role != ConsoleRole::operator_) return viewer_refused();
  if (routes_)
    for (const auto& route : *routes_) {
      if (route.auth != rules::RouteAuth::token || route.method != req.method) continue;
      std::smatch match;
      std::regex pattern(route.pattern);
      if (!std::regex_match(path, match, pattern)) continue;
      if (route.changes_state && who.role != ConsoleRole::operator_) return viewer_refused();
      rules::HttpRequest inner = req;
      inner.path = path;
      inner.matches.clear();
      for (const auto& m : match) inner.matches.push_back(m.str());
      rules::HttpResponse out;
      route.handler(inner, out);
      res.status = out.status;
      res.content_type = out.content_type;
      res.body = std::move(out.body);
      for (auto& header : out.headers) res.headers.push_back(std::move(header));
      return;
    }
  res.error(404, rules::ErrorCode::not_found, "no such endpoint");
}

void Console::validate(rules::HttpResponse& res, bool then_reload) {
  nlohmann::ordered_json out;
  out["file"] = context_.config_path;
  if (context_.config_path.empty()) {
    out["valid"] = false;
    out["errors"] = nlohmann::json::array({"running on embedded defaults: there is no file"});
    return send_json(res, then_reload ? 409 : 200, out);
  }
  auto result =
      rules::load_config_file(context_.config_path, rules::process_env, *context_.registry);
  out["valid"] = result.config.has_value();
  out["errors"] = nlohmann::json::array();
  for (const auto& d : result.errors) out["errors"].push_back(d.format());
  out["notes"] = nlohmann::json::array();
  for (const auto& d : result.notes) out["notes"].push_back(d.format());
  if (result.config) out["rules"] = result.config->rules->all().size();
  if (!then_reload) return send_json(res, 200, out);
  if (!result.config) {
    out["reloaded"] = false;
    out["message"] = "the file has errors: the rules in force stay";
    return send_json(res, 422, out);
  }
  if (!context_.reload)
    return res.error(409, rules::ErrorCode::reload_unavailable, "reload is not available here");
  context_.reload();
  out["reloaded"] = true;
  send_json(res, 200, out);
}

void Console::overview(const rules::HttpRequest& req, rules::HttpResponse& res) {
  std::int64_t hours = std::clamp<std::int64_t>(to_int(req.param("hours"), 1), 1, 168);
  std::int64_t since = unix_ms_now() - hours * 3600 * 1000;
  nlohmann::ordered_json out;
  out["hours"] = hours;
  out["queue_depth"] = context_.queue_depth();
  out["events_per_minute"] = nlohmann::json::array();
  for (const auto& [minute, count] : context_.journal.events_per_minute(since))
    out["events_per_minute"].push_back({minute, count});
  // Latency percentiles of the period's finished attempts (the first million, sorted).
  auto latencies = context_.journal.action_latencies(since, 1000000);
  auto percentile = [&](double p) -> nlohmann::ordered_json {
    if (latencies.empty()) return nullptr;
    std::size_t i = std::min(latencies.size() - 1,
                             static_cast<std::size_t>(p * static_cast<double>(latencies.size())));
    return static_cast<double>(latencies[i]) / 1000.0;
  };
  out["latency_ms"] = {{"p50", percentile(0.50)}, {"p95", percentile(0.95)}};
  out["actions"] = nlohmann::json::object();
  for (const auto& [state, count] : context_.journal.action_counts(since))
    out["actions"][state] = count;
  send_json(res, 200, out);
}

}  // namespace callbridge::bridge
