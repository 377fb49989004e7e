#include "rules/engine.h"

#include <algorithm>

#include "rules/action.h"
#include "rules/registry.h"

namespace callbridge::rules {

namespace {

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

// Named groups that took part set RESPONSE_<GROUP>; groups that did not are unset.
void apply_extract(const Regex& extract, const std::string& body, CallContext& call,
                   RuleOutcome& out) {
  RegexMatch m = extract.match(body);
  if (!m.error.empty()) {
    out.status = RuleStatus::failed;
    out.error = "extract: " + m.error;
    return;
  }
  if (!m.matched) return;
  for (const std::string& group : extract.group_names()) call.vars.erase("RESPONSE_" + group);
  for (auto& [group, value] : m.groups) {
    call.vars["RESPONSE_" + group] = value;
    out.extracted["RESPONSE_" + group] = value;
  }
}

}  // namespace

void RuleOutcome::note_undefined(const RenderReport& report) {
  for (const auto& name : report.undefined)
    if (std::find(undefined.begin(), undefined.end(), name) == undefined.end())
      undefined.push_back(name);
}

std::string_view to_string(RuleStatus status) {
  switch (status) {
    case RuleStatus::skipped:
      return "skipped";
    case RuleStatus::succeeded:
      return "succeeded";
    case RuleStatus::http_error:
      return "http_error";
    case RuleStatus::failed:
      return "failed";
  }
  return "unknown";
}

Engine::Engine(std::shared_ptr<const RuleSet> rules, std::shared_ptr<const SecretSet> secrets,
               http::Transport* transport, const Services* services)
    : rules_(std::move(rules)),
      secrets_(std::move(secrets)),
      transport_(transport),
      services_(services) {}

bool Engine::idempotent(const Rule& rule) {
  if (rule.action) return rule.action->idempotent();
  const std::string& m = rule.request.method;
  return m == "GET" || m == "PUT" || m == "DELETE";
}

const Variables& Engine::variable_defaults() {
  static const Variables defaults{{"TEL", "anonymous"}, {"ISANSWERED", "0"}};
  return defaults;
}

Variables Engine::event_variables(const EventInput& event) {
  Variables vars = event.vars;
  vars["ID"] = event.call_id;
  vars["EVENT"] = event.event;
  if (!event.tel.empty()) vars["TEL"] = event.tel;
  if (event.answered) vars["ISANSWERED"] = *event.answered ? "1" : "0";
  return vars;
}

void Engine::apply_event(const EventInput& event, CallContext& call) {
  call.call_id = event.call_id;
  for (const auto& [key, value] : variable_defaults()) call.vars.emplace(key, value);
  for (auto& [key, value] : event_variables(event)) call.vars[key] = std::move(value);
}

std::vector<RuleOutcome> Engine::run(const EventInput& event, CallContext& call) const {
  apply_event(event, call);
  std::vector<RuleOutcome> outcomes;
  for (const Rule* rule : rules_->for_event(event.event)) outcomes.push_back(run_rule(*rule, call));
  return outcomes;
}

RuleOutcome Engine::run_rule(const Rule& rule, CallContext& call,
                             const BeforeSend& before_send) const {
  RuleOutcome out;
  out.rule = rule.name;

  if (rule.when) {
    RenderReport report;
    std::string code = rule.when->code.render(call.vars, report);
    std::string shown = secrets_->redact(rule.when->code.render(call.vars, report, true));
    RegexMatch m = rule.when->pattern.match(code);
    if (!m.error.empty()) {
      out.status = RuleStatus::failed;
      out.error = "gate: " + m.error;
      return out;
    }
    out.gate = quoted(shown) + (m.matched ? " matches " : " does not match ") +
               rule.when->pattern.literal();
    if (!m.matched) return out;  // skipped
  } else {
    out.gate = "no gate";
  }

  if (rule.action) {
    static const BeforeSend no_hook;
    ActionContext context{call, *secrets_, transport_, services_,
                          before_send ? before_send : no_hook};
    rule.action->run(context, out);
    if (out.response && out.response->kind == http::OutcomeKind::response)
      call.vars["RESPONSE_STATUS"] = std::to_string(out.response->status);
    if (rule.extract && out.response && out.response->kind == http::OutcomeKind::response)
      apply_extract(*rule.extract, out.response->body, call, out);
    return out;
  }

  const RequestSpec& spec = rule.request;
  RenderReport report;
  http::Request request, shown;
  request.method = shown.method = spec.method;
  request.timeout = shown.timeout = spec.timeout;
  request.url = spec.url.render(call.vars, report);
  shown.url = spec.url.render(call.vars, report, true);
  if (spec.pseudo_response) shown.url = "response://" + shown.url;
  for (const HeaderSpec& h : spec.headers) {
    request.headers.emplace_back(h.name, h.value.render(call.vars, report));
    shown.headers.emplace_back(h.name,
                               h.secret ? "[secret]" : h.value.render(call.vars, report, true));
  }
  request.body = spec.body.render(call.vars, report);
  shown.body = spec.body.render(call.vars, report, true);
  out.note_undefined(report);
  if (!spec.pseudo_response)
    for (const auto& inspector : spec.inspectors) inspector->adapt(request, shown);
  shown.url = secrets_->redact(shown.url);
  shown.body = secrets_->redact(shown.body);
  for (auto& [name, value] : shown.headers) value = secrets_->redact(value);
  out.request = shown;
  if (!report.error.empty()) {
    out.status = RuleStatus::failed;
    out.error = report.error;
    return out;
  }

  http::Outcome response;
  if (spec.pseudo_response) {
    response.kind = http::OutcomeKind::response;
    response.status = 200;
    response.body = std::move(request.url);
  } else if (transport_ == nullptr) {
    return out;  // dry run: rendered, not sent
  } else {
    if (before_send && !before_send(shown)) {
      out.status = RuleStatus::failed;
      out.error = "not sent: the journal could not record the attempt";
      return out;
    }
    response = transport_->perform(request);
  }
  out.sent = !spec.pseudo_response;
  if (response.kind == http::OutcomeKind::response) {
    call.vars["RESPONSE_STATUS"] = std::to_string(response.status);
    out.status = response.status >= 200 && response.status < 300 ? RuleStatus::succeeded
                                                                 : RuleStatus::http_error;
    if (out.status == RuleStatus::http_error) out.error = "HTTP " + std::to_string(response.status);
  } else {
    call.vars["RESPONSE_STATUS"] = "0";
    out.status = RuleStatus::failed;
    out.error =
        std::string(http::to_string(response.kind)) + ": " + secrets_->redact(response.error);
  }

  if (rule.extract && response.kind == http::OutcomeKind::response)
    apply_extract(*rule.extract, response.body, call, out);
  out.response = std::move(response);
  return out;
}

}  // namespace callbridge::rules
