#include "connectors/escalation/service.h"

#include <algorithm>

namespace callbridge::escalation {

using json = nlohmann::json;

namespace {

TimerQueue& pick_timers(TimerQueue* given, std::unique_ptr<ThreadTimerQueue>& own, int workers) {
  if (given) return *given;
  own = std::make_unique<ThreadTimerQueue>(workers);
  return *own;
}

void reply(rules::HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.content_type = "application/json";
  res.body = body.dump();
}

// The body as JSON within the limits; nullopt with the answer set when it is not.
std::optional<json> json_body(const rules::HttpRequest& req, const rules::InputLimits& limits,
                              rules::HttpResponse& res) {
  std::string type = req.header("content-type");
  if (!type.empty() && !rules::is_json_content_type(type)) {
    res.error(415, rules::ErrorCode::unsupported_media_type, "send application/json");
    return std::nullopt;
  }
  std::string error;
  json body = rules::parse_json_body(req.body, limits, error);
  if (body.is_discarded()) {
    res.error(400, rules::ErrorCode::invalid_json, error);
    return std::nullopt;
  }
  return body;
}

// chain/invoke and chain/abort take {"params": {...}}; a bare object is accepted too.
std::optional<json> params_of(const rules::HttpRequest& req, const rules::InputLimits& limits,
                              rules::HttpResponse& res) {
  auto parsed = json_body(req, limits, res);
  if (!parsed) return std::nullopt;
  json body = std::move(*parsed);
  if (!body.is_object()) {
    res.error(400, rules::ErrorCode::invalid_json, "the body must be a JSON object");
    return std::nullopt;
  }
  if (auto it = body.find("params"); it != body.end()) {
    if (!it->is_object()) {
      res.error(400, rules::ErrorCode::invalid_params, "\"params\" must be an object");
      return std::nullopt;
    }
    return *it;
  }
  return body;
}

json summary(const ChainState& s) {
  return json{{"id", s.id},
              {"status", to_string(s.status)},
              {"backend", s.backend},
              {"origin_call_id", s.origin_call_id},
              {"origin_rule", s.origin_rule},
              {"callflow", s.callflow.id},
              {"guidance", s.guidance.id},
              {"created_at", iso8601(s.created_at)},
              {"finished_at", s.finished_at ? json(iso8601(s.finished_at)) : json(nullptr)},
              {"loops", s.loops()},
              {"attempts", s.attempts.size()},
              {"key", s.key ? json(*s.key) : json(nullptr)},
              {"terminated_by", s.terminated_by},
              {"reason", s.reason}};
}

}  // namespace

EscalationService::EscalationService(const EscalationSettings& section, rules::Host& host,
                                     TimerQueue* timers)
    : section_(section),
      events_(host.events),
      limits_(host.limits),
      timers_(pick_timers(timers, own_timers_, section.workers)),
      store_(host.store, host.leases) {
  RemoteChains* remote = nullptr;
  if (section_.dialer.type == DialerType::pigeon) {
    pigeon_ = std::make_unique<PigeonClient>(section_.dialer.pigeon, host.transport);
    remote = pigeon_.get();
  } else if (section_.dialer.type == DialerType::webhook) {
    dialer_ = std::make_unique<WebhookDialer>(section_.dialer.webhook, host.transport);
  } else {
    dialer_ = std::make_unique<SimulatedDialer>(timers_, section_.dialer.script,
                                                section_.dialer.fallback);
  }
  engine_ = std::make_unique<Engine>(section_.engine, timers_, store_, dialer_.get(), remote);
  engine_->set_finished_handler([this](const ChainState& s) { return submit_finished(s); });
}

std::shared_ptr<EscalationService> EscalationService::create(const EscalationSettings& section,
                                                             rules::Host& host,
                                                             TimerQueue* timers) {
  auto service = std::make_shared<EscalationService>(section, host, timers);
  for (auto& route : service->routes()) host.add_route(service, std::move(route));
  return service;
}

std::vector<rules::Route> EscalationService::routes() {
  std::vector<rules::Route> out;
  if (!section_.api) return out;
  auto route =
      [&](std::string method, std::string pattern,
          void (EscalationService::*handler)(const rules::HttpRequest&, rules::HttpResponse&)) {
        out.push_back({std::move(method), std::move(pattern), rules::RouteAuth::token,
                       [this, handler](const rules::HttpRequest& req, rules::HttpResponse& res) {
                         (this->*handler)(req, res);
                       }});
      };
  route("POST", "/api/apps/pigeon/chain/invoke", &EscalationService::handle_invoke);
  route("GET", "/api/apps/pigeon/results/([^/]+)", &EscalationService::handle_result);
  route("POST", "/api/apps/pigeon/chain/abort", &EscalationService::handle_abort);
  route("GET", "/v1/escalation/chains", &EscalationService::handle_chains);
  route("GET", "/v1/escalation/chains/([^/]+)", &EscalationService::handle_chain);
  route("GET", "/v1/escalation/definitions", &EscalationService::handle_definitions);
  route("POST", "/v1/escalation/dial/([^/]+)/result", &EscalationService::handle_dial_result);
  return out;
}

EscalationService::~EscalationService() {
  stop();
}

void EscalationService::start() {
  engine_->recover();
}

void EscalationService::stop() {
  if (stopped_) return;
  stopped_ = true;
  engine_->stop();
  if (own_timers_) own_timers_->stop();
}

std::optional<ChainState> EscalationService::start_chain(ChainRequest request, std::string& error) {
  return engine_->start(std::move(request), error);
}

rules::EventInput EscalationService::finished_event(const ChainState& s) {
  rules::EventInput e;
  e.event = "escalation.finished";
  e.call_id = s.origin_call_id.empty() ? "escalation-" + s.id : s.origin_call_id;
  std::string contact_name;
  for (const auto& c : s.callflow.contacts)
    if (c.id == s.terminated_by) contact_name = c.name;
  e.vars = {{"ESCALATION_STATUS", std::string(to_string(s.status))},
            {"ESCALATION_KEY", s.key ? std::to_string(*s.key) : ""},
            {"ESCALATION_CONTACT", s.terminated_by},
            {"ESCALATION_CONTACT_NAME", contact_name},
            {"ESCALATION_LOOPS", std::to_string(s.loops())},
            {"ESCALATION_ATTEMPTS", std::to_string(s.attempts.size())},
            {"ESCALATION_CHAIN_ID", s.id},
            {"ESCALATION_REASON", s.reason}};
  return e;
}

bool EscalationService::submit_finished(const ChainState& s) {
  rules::SubmitRejection rejection;
  return events_.submit(finished_event(s), nullptr, rejection).has_value();
}

void EscalationService::metrics(std::string& out) const {
  Engine::Counts c = engine_->counts();
  out += "# HELP callbridge_escalation_chains_running Escalation chains running now.\n";
  out += "# TYPE callbridge_escalation_chains_running gauge\n";
  out += "callbridge_escalation_chains_running " + std::to_string(c.running) + "\n";
  out += "# HELP callbridge_escalation_chains_started_total Escalation chains started.\n";
  out += "# TYPE callbridge_escalation_chains_started_total counter\n";
  out += "callbridge_escalation_chains_started_total " + std::to_string(c.started) + "\n";
  out += "# HELP callbridge_escalation_chains_finished_total Escalation chains ended, by status.\n";
  out += "# TYPE callbridge_escalation_chains_finished_total counter\n";
  for (auto s : {ChainStatus::succeeded, ChainStatus::failed, ChainStatus::aborted})
    out += "callbridge_escalation_chains_finished_total{status=\"" + std::string(to_string(s)) +
           "\"} " + std::to_string(c.finished[static_cast<int>(s)]) + "\n";
  out += "# HELP callbridge_escalation_attempts_total Escalation calls placed, by outcome.\n";
  out += "# TYPE callbridge_escalation_attempts_total counter\n";
  for (auto o : {AttemptOutcome::succeeded, AttemptOutcome::ignored, AttemptOutcome::missed,
                 AttemptOutcome::failed, AttemptOutcome::aborted})
    out += "callbridge_escalation_attempts_total{outcome=\"" + std::string(to_string(o)) + "\"} " +
           std::to_string(c.attempts[static_cast<int>(o)]) + "\n";
}

void EscalationService::handle_invoke(const rules::HttpRequest& req, rules::HttpResponse& res) {
  auto params = params_of(req, limits_, res);
  if (!params) return;
  bool remote = pigeon_ != nullptr;
  ChainRequest request;
  const json& p = *params;
  if (auto it = p.find("callflowId"); it != p.end()) {
    std::string id = it->is_string() ? it->get<std::string>() : it->dump();
    auto flow = section_.callflows.find(id);
    if (flow != section_.callflows.end())
      request.callflow = flow->second;
    else if (remote)
      request.callflow.id = id;
    else
      return res.error(404, rules::ErrorCode::unknown_callflow, "no call flow \"" + id + "\"");
  } else if (auto it = p.find("callflow"); it != p.end()) {
    if (auto e = callflow_from_pigeon(*it, section_.contacts, request.callflow); !e.empty())
      return res.error(400, rules::ErrorCode::invalid_callflow, e);
  } else {
    return res.error(400, rules::ErrorCode::missing_callflow, "callflowId or callflow is required");
  }
  if (auto it = p.find("guidanceId"); it != p.end()) {
    std::string id = it->is_string() ? it->get<std::string>() : it->dump();
    auto g = section_.guidances.find(id);
    if (g != section_.guidances.end())
      request.guidance = g->second;
    else if (remote)
      request.guidance.id = id;
    else
      return res.error(404, rules::ErrorCode::unknown_guidance, "no guidance \"" + id + "\"");
  } else if (auto it = p.find("guidance"); it != p.end()) {
    if (auto e = guidance_from_pigeon(*it, request.guidance); !e.empty())
      return res.error(400, rules::ErrorCode::invalid_guidance, e);
  } else {
    return res.error(400, rules::ErrorCode::missing_guidance, "guidanceId or guidance is required");
  }
  if (auto it = p.find("parameters"); it != p.end()) {
    if (!it->is_object() && !it->is_null())
      return res.error(400, rules::ErrorCode::invalid_params, "\"parameters\" must be an object");
    request.parameters = parameters_from_json(*it);
  }
  if (auto it = p.find("callId"); it != p.end() && !it->is_null()) {
    auto call_id = rules::call_id_text(*it);
    std::string problem =
        call_id ? rules::check_call_id(*call_id, "callId") : "\"callId\" must be a string";
    if (!problem.empty()) return res.error(400, rules::ErrorCode::invalid_params, problem);
    request.origin_call_id = *call_id;
  }
  std::string error;
  rules::ErrorCode code = rules::ErrorCode::escalation_unavailable;
  auto chain = engine_->start(std::move(request), error, &code);
  if (!chain &&
      (code == rules::ErrorCode::invalid_callflow || code == rules::ErrorCode::invalid_guidance))
    return res.error(400, code, error);
  if (!chain) {
    // Not durable, or the engine is stopping: temporary either way.
    res.headers.emplace_back("Retry-After", "1");
    return res.error(503, code, error);
  }
  reply(res, 200, json{{"resultId", chain->id}});
}

void EscalationService::handle_result(const rules::HttpRequest& req, rules::HttpResponse& res) {
  std::string id = req.matches.size() > 1 ? req.matches[1] : "";
  auto chain = engine_->get(id);
  if (!chain) return res.error(404, rules::ErrorCode::not_found, "no result " + id);
  reply(res, 200, pigeon_result(*chain));
}

void EscalationService::handle_abort(const rules::HttpRequest& req, rules::HttpResponse& res) {
  auto params = params_of(req, limits_, res);
  if (!params) return;
  auto it = params->find("resultId");
  if (it == params->end() || !it->is_string())
    return res.error(400, rules::ErrorCode::missing_result_id, "resultId is required");
  std::string error;
  int status = 0;
  if (!engine_->abort(it->get<std::string>(), error, status))
    return res.error(status,
                     status == 404   ? rules::ErrorCode::not_found
                     : status == 409 ? rules::ErrorCode::not_active
                                     : rules::ErrorCode::upstream_error,
                     error);
  auto chain = engine_->get(it->get<std::string>());
  reply(res, 200, chain ? pigeon_result(*chain) : json{{"resultId", it->get<std::string>()}});
}

void EscalationService::handle_chains(const rules::HttpRequest& req, rules::HttpResponse& res) {
  std::size_t limit = 100;
  if (req.has_param("limit")) {
    try {
      limit = static_cast<std::size_t>(std::stoul(req.param("limit")));
    } catch (...) {
      return res.error(400, rules::ErrorCode::invalid_limit, "limit must be a positive integer");
    }
  }
  std::string status = req.param("status");
  json chains = json::array();
  for (const auto& s : engine_->list(status.empty() ? limit : SIZE_MAX)) {
    if (!status.empty() && to_string(s.status) != status) continue;
    if (chains.size() >= limit) break;
    chains.push_back(summary(s));
  }
  reply(res, 200, json{{"chains", chains}});
}

void EscalationService::handle_chain(const rules::HttpRequest& req, rules::HttpResponse& res) {
  std::string id = req.matches.size() > 1 ? req.matches[1] : "";
  auto chain = engine_->get(id);
  if (!chain) return res.error(404, rules::ErrorCode::not_found, "no chain " + id);
  json out = to_json(*chain);
  out["result"] = pigeon_result(*chain);
  reply(res, 200, out);
}

void EscalationService::handle_definitions(const rules::HttpRequest&, rules::HttpResponse& res) {
  json flows = json::array();
  for (const auto& [id, flow] : section_.callflows) {
    json contacts = json::array();
    for (const auto& c : flow.contacts) contacts.push_back({{"id", c.id}, {"name", c.name}});
    flows.push_back(
        {{"id", id}, {"name", flow.name}, {"loop_limit", flow.loop_limit}, {"contacts", contacts}});
  }
  json guidances = json::array();
  for (const auto& [id, g] : section_.guidances) {
    // The parameters its messages use: those rendering with none reports missing.
    std::vector<std::string> used;
    render_message(g.message, {}, &used);
    json keys = json::array();
    for (const auto& [key, response] : g.responses) {
      render_message(response.message, {}, &used);
      keys.push_back({{"key", key}, {"reaction", to_string(response.reaction)}});
    }
    std::sort(used.begin(), used.end());
    used.erase(std::unique(used.begin(), used.end()), used.end());
    guidances.push_back({{"id", id},
                         {"name", g.name},
                         {"message", g.message},
                         {"keys", keys},
                         {"parameters", used}});
  }
  reply(res, 200, json{{"callflows", flows}, {"guidances", guidances}});
}

void EscalationService::handle_dial_result(const rules::HttpRequest& req,
                                           rules::HttpResponse& res) {
  auto* webhook = dynamic_cast<WebhookDialer*>(dialer_.get());
  if (!webhook)
    return res.error(404, rules::ErrorCode::not_found, "the dialer is not a webhook dialer");
  std::string attempt = req.matches.size() > 1 ? req.matches[1] : "";
  auto body = json_body(req, limits_, res);
  if (!body) return;
  std::string error;
  auto result = parse_dial_result(*body, error);
  if (!result)
    return res.error(400, rules::ErrorCode::invalid_result,
                     error.empty() ? "\"outcome\" (or \"key\") is required" : error);
  if (!webhook->complete(attempt, *result, error))
    return res.error(404, rules::ErrorCode::not_pending, error);
  reply(res, 200, json{{"attemptId", attempt}, {"accepted", true}});
}

std::shared_ptr<rules::Service> make_service(const rules::Config& config, rules::Host& host) {
  auto section = config.section<EscalationSettings>("escalation");
  if (!section) return nullptr;
  return EscalationService::create(*section, host);
}

}  // namespace callbridge::escalation
