#include "connectors/kintone/service.h"

#include <nlohmann/json.hpp>

#include "connectors/kintone/phone.h"
#include "log/log.h"
#include "rules/clock_text.h"

namespace callbridge::kintone {

using nlohmann::json;

namespace {

std::string iso_or_empty(std::chrono::system_clock::time_point at) {
  if (at == std::chrono::system_clock::time_point{}) return "";
  return rules::iso8601_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count());
}

std::string_view auth_kind(const Auth& auth) {
  if (auth.oauth) return "oauth";
  if (!auth.login.empty()) return "password";
  return "api_token";
}

// How long POST /v1/kintone/directory/sync?wait=1 waits for the cluster's sync.
constexpr auto kSharedSyncWait = std::chrono::seconds(120);

json progress_json(const SyncProgress& p, const Directory& d) {
  return {{"customers", d.size()},
          {"last_sync", iso_or_empty(p.last_success)},
          {"last_duration_ms", p.last_duration.count()},
          {"running", p.running},
          {"full", p.full},
          {"expected", p.expected},
          {"fetched", p.fetched},
          {"changed", p.changed},
          {"rate", p.rate},
          {"full_syncs", p.full_syncs},
          {"incremental_syncs", p.incremental_syncs},
          {"failures", p.failures},
          {"watermark", p.watermark},
          {"last_error", p.last_error}};
}

}  // namespace

KintoneService::KintoneService(std::shared_ptr<const KintoneSettings> settings,
                               http::Transport& transport, rules::KeyValueStore* store, Log log,
                               rules::Leases* leases)
    : settings_(std::move(settings)), log_(std::move(log)) {
  // Progress and failures go to the bridge's logger, as JSON lines like every other log line.
  if (!log_)
    log_ = [](const std::string& line) {
      log::write(line.find("failed") == std::string::npos ? log::Level::info : log::Level::warn,
                 line);
    };
  for (const auto& [name, spec] : settings_->connections) {
    Connection c = spec.connection;
    if (spec.oauth) {
      auto tokens = std::make_shared<OAuthTokens>(name, c.base_url, *spec.oauth, transport, store,
                                                  OAuthTokens::Clock{}, leases);
      oauth_.emplace(name, tokens);
      c.auth.oauth = tokens;
    }
    clients_.emplace(name, std::make_unique<Client>(std::move(c), transport));
  }
  if (settings_->directory) {
    directory_ = std::make_shared<Directory>();
    Client* c = client(settings_->directory->connection);
    if (c) sync_ = std::make_unique<DirectorySync>(*c, *settings_->directory, directory_, log_);
    if (sync_ && store && leases)
      shared_ = std::make_unique<SharedDirectory>(*sync_, *store, *leases, log_);
  }
}

KintoneService::~KintoneService() {
  stop();
}

Client* KintoneService::client(std::string_view connection) const {
  auto it = clients_.find(connection);
  return it == clients_.end() ? nullptr : it->second.get();
}

OAuthTokens* KintoneService::oauth(std::string_view connection) const {
  auto it = oauth_.find(connection);
  return it == oauth_.end() ? nullptr : it->second.get();
}

void KintoneService::start() {
  if (shared_)
    shared_->start();
  else if (sync_)
    sync_->start();
}

void KintoneService::stop() {
  if (shared_) shared_->stop();
  if (sync_) sync_->stop();
}

void KintoneService::enrich(const rules::EventInput& event, rules::Variables& vars) const {
  if (!directory_) return;
  std::string tel = event.tel;
  if (tel.empty()) {
    auto it = event.vars.find("TEL");
    if (it == event.vars.end()) return;  // a later event of the call: keep what it had
    tel = it->second;
  }
  auto found = directory_->lookup(tel);
  vars["CUSTOMER_FOUND"] = found ? "1" : "0";
  vars["CUSTOMER_ID"] = found ? found->id : "";
  vars["CUSTOMER_NAME"] = found ? found->name : "";
  vars["CUSTOMER_COMPANY"] = found ? found->company : "";
  std::string stored;
  if (found) {
    auto key = phone_key(tel);
    for (const auto& p : found->phones)
      if (phone_key(p) == key) {
        stored = p;
        break;
      }
  }
  vars["CUSTOMER_TEL"] = stored;
}

void KintoneService::metrics(std::string& out) const {
  for (const auto& [name, c] : clients_) c->metrics(out);
  for (const auto& [name, tokens] : oauth_)
    out += "callbridge_kintone_oauth_authorized{connection=\"" + name + "\"} " +
           (tokens->authorized() ? "1" : "0") + "\n" +
           "callbridge_kintone_oauth_refreshes_total{connection=\"" + name + "\"} " +
           std::to_string(tokens->refreshes()) + "\n";
  if (sync_) sync_->metrics(out);
}

nlohmann::json KintoneService::status() const {
  json out;
  out["connections"] = json::array();
  for (const auto& [name, client] : clients_) {
    const Connection& c = client->connection();
    json j;
    j["name"] = name;
    j["url"] = c.base_url;
    j["auth"] = auth_kind(c.auth);
    j["basic_auth"] = !c.auth.basic_user.empty();
    j["oauth"] = nullptr;
    if (const OAuthTokens* tokens = oauth(name))
      j["oauth"] = {{"authorized", tokens->authorized()},
                    {"refreshes", tokens->refreshes()},
                    {"authorize", "/v1/kintone/oauth/" + name + "/start"}};
    j["in_flight"] = client->in_flight();
    j["max_concurrency"] = c.max_concurrency;
    j["daily_request_limit"] = c.daily_request_limit;
    j["apps"] = json::array();
    for (const auto& u : client->usage())
      j["apps"].push_back({{"app", u.app},
                           {"requests_today", u.today},
                           {"requests_total", u.total},
                           {"daily_request_limit", c.daily_request_limit}});
    j["failures"] = client->failures();
    out["connections"].push_back(std::move(j));
  }
  out["directory"] = nullptr;
  if (sync_) {
    json d = progress_json(sync_->progress(), *directory_);
    d["connection"] = settings_->directory->connection;
    d["app"] = settings_->directory->app;
    out["directory"] = std::move(d);
  }
  return out;
}

std::vector<rules::Route> KintoneService::routes() {
  std::vector<rules::Route> out;
  // The tokens of the connection the path names, or a 404 answer.
  auto tokens_or_404 = [this](const rules::HttpRequest& req,
                              rules::HttpResponse& res) -> OAuthTokens* {
    OAuthTokens* tokens = oauth(req.matches.at(1));
    if (!tokens)
      res.error(404, rules::ErrorCode::not_found,
                "no kintone connection \"" + req.matches.at(1) + "\" with oauth");
    return tokens;
  };
  out.push_back({"GET", R"(/v1/kintone/oauth/([A-Za-z0-9_-]+)/start)", rules::RouteAuth::token,
                 [tokens_or_404](const rules::HttpRequest& req, rules::HttpResponse& res) {
                   OAuthTokens* tokens = tokens_or_404(req, res);
                   if (!tokens) return;
                   std::string url = tokens->authorization_url();
                   res.status = 302;
                   res.headers.emplace_back("Location", url);
                   res.body = json{{"location", url}}.dump();
                 },
                 /*changes_state=*/true});
  out.push_back({"GET", R"(/v1/kintone/oauth/([A-Za-z0-9_-]+)/callback)", rules::RouteAuth::none,
                 [this, tokens_or_404](const rules::HttpRequest& req, rules::HttpResponse& res) {
                   OAuthTokens* tokens = tokens_or_404(req, res);
                   if (!tokens) return;
                   if (req.has_param("error")) {
                     res.error(400, rules::ErrorCode::oauth_denied,
                               "kintone answered error=" + req.param("error").substr(0, 100));
                     return;
                   }
                   std::string error;
                   if (!tokens->complete(req.param("code"), req.param("state"), error)) {
                     res.error(400, rules::ErrorCode::oauth_failed, error);
                     return;
                   }
                   log_("kintone connection " + req.matches.at(1) + ": OAuth authorized");
                   res.body = json{{"connection", req.matches.at(1)}, {"authorized", true}}.dump();
                 }});
  out.push_back({"POST", R"(/v1/kintone/directory/sync)", rules::RouteAuth::token,
                 [this](const rules::HttpRequest& req, rules::HttpResponse& res) {
                   if (!sync_) {
                     res.error(404, rules::ErrorCode::not_found, "no kintone.directory configured");
                     return;
                   }
                   std::string wait = req.param("wait");
                   if (shared_) {
                     // The node holding the directory's lease syncs; wait=1 waits until its
                     // result is loaded here.
                     std::uint64_t before = shared_->syncs();
                     shared_->request_sync();
                     bool waiting = wait == "1" || wait == "true";
                     std::optional<std::string> outcome;
                     if (waiting) outcome = shared_->wait_for_sync(before, kSharedSyncWait);
                     json body = progress_json(sync_->progress(), *directory_);
                     body["version"] = shared_->version();
                     body["holder"] = shared_->holder();
                     if (!waiting) {
                       body["requested"] = true;
                       res.status = 202;
                     } else if (!outcome) {
                       body["ok"] = false;
                       body["error"] = "no node published a sync in time";
                       res.status = 504;
                     } else {
                       body["ok"] = outcome->empty();
                       if (!outcome->empty()) body["error"] = *outcome;
                       res.status = outcome->empty() ? 200 : 502;
                     }
                     res.body = body.dump();
                     return;
                   }
                   if (wait == "1" || wait == "true") {
                     Result r = sync_->sync();
                     json body = progress_json(sync_->progress(), *directory_);
                     body["ok"] = r.ok();
                     if (!r.ok()) body["error"] = r.error_text();
                     res.status = r.ok() ? 200 : 502;
                     res.body = body.dump();
                     return;
                   }
                   sync_->request_sync();
                   res.status = 202;
                   json body = progress_json(sync_->progress(), *directory_);
                   body["requested"] = true;
                   res.body = body.dump();
                 }});
  out.push_back({"GET", R"(/v1/kintone/connections)", rules::RouteAuth::token,
                 [this](const rules::HttpRequest&, rules::HttpResponse& res) {
                   res.body = status().dump(-1, ' ', false, json::error_handler_t::replace);
                 }});
  out.push_back({"GET", R"(/v1/kintone/directory)", rules::RouteAuth::token,
                 [this](const rules::HttpRequest&, rules::HttpResponse& res) {
                   if (!sync_) {
                     res.error(404, rules::ErrorCode::not_found, "no kintone.directory configured");
                     return;
                   }
                   json body = progress_json(sync_->progress(), *directory_);
                   if (shared_) {
                     body["version"] = shared_->version();
                     body["holder"] = shared_->holder();
                   }
                   res.body = body.dump();
                 }});
  return out;
}

}  // namespace callbridge::kintone
