#include "connectors/escalation/pigeon_client.h"

#include <ctime>

namespace callbridge::escalation {

using json = nlohmann::json;

namespace {

std::string describe_failure(const http::Outcome& outcome) {
  if (outcome.kind == http::OutcomeKind::response) {
    std::string out = "HTTP " + std::to_string(outcome.status);
    if (!outcome.body.empty()) out += ": " + outcome.body.substr(0, 200);
    return out;
  }
  return std::string(http::to_string(outcome.kind)) +
         (outcome.error.empty() ? "" : " (" + outcome.error + ")");
}

std::string text_of(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "";
  return j.dump();
}

std::optional<int> key_of(const json& j) {
  if (j.is_number_integer()) return j.get<int>();
  if (j.is_string() && j.get<std::string>().size() == 1 &&
      std::isdigit(static_cast<unsigned char>(j.get<std::string>()[0])))
    return j.get<std::string>()[0] - '0';
  return std::nullopt;
}

std::optional<ChainStatus> status_of(const std::string& text) {
  if (auto s = chain_status_from_string(text)) return s;
  if (text == "success" || text == "成功" || text == "completed") return ChainStatus::succeeded;
  if (text == "failure" || text == "失敗" || text == "error") return ChainStatus::failed;
  if (text == "abort" || text == "中断" || text == "cancelled" || text == "canceled")
    return ChainStatus::aborted;
  if (text == "active" || text == "calling" || text == "preparing" || text == "準備中")
    return ChainStatus::running;
  return std::nullopt;
}

std::optional<AttemptOutcome> outcome_of(const std::string& text) {
  if (auto o = attempt_outcome_from_string(text)) return o;
  if (text == "success" || text == "answered") return AttemptOutcome::succeeded;
  if (text == "no-answer" || text == "noanswer" || text == "busy") return AttemptOutcome::missed;
  if (text == "failure" || text == "error") return AttemptOutcome::failed;
  if (text == "no-key" || text == "nokey" || text == "voicemail") return AttemptOutcome::ignored;
  return std::nullopt;
}

}  // namespace

Millis parse_iso8601(std::string_view text) {
  int y, mo, d, h, mi;
  double sec;
  char rest[16] = {0};
  std::string s(text);
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%lf%15s", &y, &mo, &d, &h, &mi, &sec, rest) < 6)
    return 0;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = 0;
  Millis at = static_cast<Millis>(timegm(&tm)) * 1000 + static_cast<Millis>(sec * 1000 + 0.5);
  std::string zone(rest);
  if (zone.size() >= 6 && (zone[0] == '+' || zone[0] == '-')) {
    int zh = 0, zm = 0;
    if (std::sscanf(zone.c_str() + 1, "%d:%d", &zh, &zm) == 2) {
      Millis offset = (zh * 60 + zm) * 60'000LL;
      at += zone[0] == '+' ? -offset : offset;
    }
  }
  return at;
}

PigeonClient::PigeonClient(PigeonSettings settings, http::Transport& transport)
    : settings_(std::move(settings)), transport_(transport) {
  while (!settings_.base_url.empty() && settings_.base_url.back() == '/')
    settings_.base_url.pop_back();
}

http::Request PigeonClient::request(std::string method, const std::string& path,
                                    std::string body) const {
  http::Request r;
  r.method = std::move(method);
  r.url = settings_.base_url + path;
  r.headers = {{"X-Authorization", "Token " + settings_.token},
               {"Content-Type", "application/json"}};
  r.body = std::move(body);
  r.timeout = settings_.timeout;
  return r;
}

json PigeonClient::invoke_body(const ChainState& s) {
  json params = json::object();
  if (s.callflow.contacts.empty())
    params["callflowId"] = s.callflow.id;
  else
    params["callflow"] = pigeon_callflow(s.callflow);
  if (s.guidance.message.empty() && s.guidance.responses.empty())
    params["guidanceId"] = s.guidance.id;
  else
    params["guidance"] = pigeon_guidance(s.guidance);
  json parameters = json::object();
  for (const auto& [k, v] : s.parameters) parameters[k] = v;
  params["parameters"] = parameters;
  return json{{"params", params}};
}

RemoteChains::Invoked PigeonClient::invoke(const ChainState& state) {
  http::Outcome outcome = transport_.perform(
      request("POST", "/api/apps/pigeon/chain/invoke", invoke_body(state).dump()));
  Invoked out;
  if (!outcome.ok()) {
    out.error = describe_failure(outcome);
    // A 4xx was refused; anything else may have reached Pigeon and started calling.
    out.maybe_sent = outcome.maybe_sent &&
                     !(outcome.kind == http::OutcomeKind::response && outcome.status < 500);
    return out;
  }
  json body = json::parse(outcome.body, nullptr, false);
  if (body.is_object() && body.contains("resultId") && !text_of(body["resultId"]).empty()) {
    out.result_id = text_of(body["resultId"]);
  } else {
    out.error = "the invoke answer has no resultId: " + outcome.body.substr(0, 200);
    out.maybe_sent = true;
  }
  return out;
}

RemoteChains::Polled PigeonClient::poll(const std::string& result_id) {
  http::Outcome outcome =
      transport_.perform(request("GET", "/api/apps/pigeon/results/" + result_id, ""));
  Polled out;
  if (!outcome.ok()) {
    out.error = describe_failure(outcome);
    return out;
  }
  out.result = json::parse(outcome.body, nullptr, false);
  if (!out.result.is_object() || !out.result.contains("isActive")) {
    out.error = "the result has no isActive: " + outcome.body.substr(0, 200);
    out.result = nullptr;
    return out;
  }
  out.ok = true;
  return out;
}

bool PigeonClient::abort(const std::string& result_id, std::string& error) {
  json body{{"params", {{"resultId", result_id}}}};
  http::Outcome outcome =
      transport_.perform(request("POST", "/api/apps/pigeon/chain/abort", body.dump()));
  if (outcome.ok()) return true;
  error = describe_failure(outcome);
  return false;
}

bool PigeonClient::apply(const json& r, ChainState& s) const {
  bool active = r.value("isActive", true);
  if (auto it = r.find("history"); it != r.end() && it->is_array()) {
    std::vector<Attempt> attempts;
    for (const auto& h : *it) {
      if (!h.is_object()) continue;
      Attempt a;
      a.id = s.id + "-" + std::to_string(attempts.size() + 1);
      a.contact_id = text_of(h.value("contactId", json(nullptr)));
      a.contact_name = text_of(h.value("displayName", json(nullptr)));
      a.phone = text_of(h.value("phoneNumber", json(nullptr)));
      a.loop = h.value("loop", 1);
      a.started_at = parse_iso8601(text_of(h.value("startedAt", json(nullptr))));
      a.ended_at = parse_iso8601(text_of(h.value("endedAt", json(nullptr))));
      a.outcome = outcome_of(text_of(h.value("result", json(nullptr))));
      if (auto k = h.find("keyInput"); k != h.end()) a.key = key_of(*k);
      if (auto rt = h.find("reaction"); rt != h.end() && rt->is_string())
        a.reaction = reaction_from_string(rt->get<std::string>());
      a.message = text_of(h.value("message", json(nullptr)));
      for (std::size_t i = 0; i < s.callflow.contacts.size(); ++i)
        if (s.callflow.contacts[i].id == a.contact_id) a.position = static_cast<int>(i);
      attempts.push_back(std::move(a));
    }
    s.attempts = std::move(attempts);
    if (!s.attempts.empty()) s.loop = s.attempts.back().loop;
  }
  // Pigeon's own definitions, when the chain only named them by id.
  if (s.callflow.contacts.empty())
    if (auto it = r.find("callflow"); it != r.end() && it->is_object()) {
      CallFlow flow;
      if (callflow_from_pigeon(*it, {}, flow).empty() || !flow.contacts.empty()) {
        flow.id = s.callflow.id.empty() ? flow.id : s.callflow.id;
        s.callflow = flow;
      }
    }
  if (auto k = r.find("keyInput"); k != r.end()) s.key = key_of(*k);
  if (auto t = r.find("terminatedBy"); t != r.end() && t->is_object())
    s.terminated_by = text_of(t->value("contactId", json(nullptr)));
  else if (s.key && s.terminated_by.empty())
    for (auto a = s.attempts.rbegin(); a != s.attempts.rend(); ++a)
      if (a->key == s.key) {
        s.terminated_by = a->contact_id;
        break;
      }
  if (auto st = r.find("status"); st != r.end() && st->is_string()) {
    if (auto status = status_of(st->get<std::string>()); status && !active) s.status = *status;
  }
  if (!active && s.status == ChainStatus::running)
    s.status = s.key ? ChainStatus::succeeded : ChainStatus::failed;
  if (auto reason = r.find("reason"); reason != r.end() && reason->is_string())
    s.reason = reason->get<std::string>();
  if (!active) {
    if (auto f = r.find("finishedAt"); f != r.end() && f->is_string())
      s.finished_at = parse_iso8601(f->get<std::string>());
    if (s.reason.empty()) s.reason = "Kompira Pigeon: " + std::string(to_string(s.status));
  }
  return !active;
}

}  // namespace callbridge::escalation
