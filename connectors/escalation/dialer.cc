#include "connectors/escalation/dialer.h"

#include <sstream>

namespace callbridge::escalation {

using json = nlohmann::json;

std::optional<ScriptedAnswer> ScriptedAnswer::parse(std::string_view text, std::string& error) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  ScriptedAnswer answer;
  std::size_t i = 0;
  auto fail = [&](std::string message) -> std::optional<ScriptedAnswer> {
    error = std::move(message);
    return std::nullopt;
  };
  if (words.empty()) return fail("empty answer; expected key N, no-key, no-answer or fail");
  const std::string& w = words[i++];
  auto digit = [](const std::string& s) { return s.size() == 1 && s[0] >= '0' && s[0] <= '9'; };
  if (w == "key") {
    if (i >= words.size() || !digit(words[i])) return fail("\"key\" needs a digit 0-9");
    answer.kind = Kind::key;
    answer.key = words[i++][0] - '0';
  } else if (digit(w)) {
    answer.kind = Kind::key;
    answer.key = w[0] - '0';
  } else if (w == "no-key" || w == "voicemail" || w == "ignored") {
    answer.kind = Kind::no_key;
  } else if (w == "no-answer" || w == "missed") {
    answer.kind = Kind::no_answer;
  } else if (w == "fail" || w == "failed") {
    answer.kind = Kind::fail;
  } else {
    return fail("unknown answer \"" + w +
                "\"; expected key N, no-key, voicemail, no-answer or fail");
  }
  if (i < words.size()) {
    if (words[i] != "after" || i + 1 >= words.size())
      return fail("expected \"after SECONDS\" after the answer");
    try {
      std::size_t used = 0;
      double seconds = std::stod(words[i + 1], &used);
      if (used != words[i + 1].size() || seconds < 0 || seconds > 3600) throw 0;
      answer.ring = std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
    } catch (...) {
      return fail("\"after\" needs seconds between 0 and 3600");
    }
    i += 2;
  }
  if (i != words.size()) return fail("unexpected \"" + words[i] + "\"");
  return answer;
}

std::string ScriptedAnswer::describe() const {
  std::string out;
  switch (kind) {
    case Kind::key:
      out = "key " + std::to_string(key);
      break;
    case Kind::no_key:
      out = "no-key";
      break;
    case Kind::no_answer:
      out = "no-answer";
      break;
    case Kind::fail:
      out = "fail";
      break;
  }
  if (ring) out += " after " + std::to_string(ring->count() / 1000.0);
  return out;
}

SimulatedDialer::SimulatedDialer(TimerQueue& timers, Script script, ScriptedAnswer fallback)
    : timers_(timers), script_(std::move(script)), fallback_(fallback) {}

void SimulatedDialer::set_script(const std::string& contact_id,
                                 std::vector<ScriptedAnswer> answers) {
  std::lock_guard lock(mutex_);
  script_[contact_id] = std::move(answers);
}

void SimulatedDialer::dial(const DialRequest& request, DialCompletion done) {
  ScriptedAnswer answer = fallback_;
  {
    std::lock_guard lock(mutex_);
    dialed_.push_back(Dialed{request.chain_id, request.attempt_id, request.contact.id, request.loop,
                             request.message});
    auto it = script_.find(request.contact.id);
    if (it != script_.end() && !it->second.empty()) {
      std::size_t index = static_cast<std::size_t>(std::max(0, request.loop - 1));
      answer = it->second[std::min(index, it->second.size() - 1)];
    }
  }
  DialResult result;
  std::chrono::milliseconds ring = answer.ring.value_or(std::chrono::milliseconds(0));
  switch (answer.kind) {
    case ScriptedAnswer::Kind::key:
      result.outcome = AttemptOutcome::succeeded;
      result.key = answer.key;
      break;
    case ScriptedAnswer::Kind::no_key:
      result.outcome = AttemptOutcome::ignored;
      break;
    case ScriptedAnswer::Kind::no_answer:
      result.outcome = AttemptOutcome::missed;
      if (!answer.ring || ring > request.ring_timeout) ring = request.ring_timeout;
      break;
    case ScriptedAnswer::Kind::fail:
      result.outcome = AttemptOutcome::failed;
      result.error = "simulated failure";
      break;
  }
  if (ring > request.ring_timeout && answer.kind != ScriptedAnswer::Kind::fail) {
    // Rang longer than the ring timeout: nobody answered in time.
    ring = request.ring_timeout;
    result = DialResult{AttemptOutcome::missed, std::nullopt, ""};
  }
  std::string attempt_id = request.attempt_id;
  timers_.schedule(timers_.now() + ring.count(),
                   [this, attempt_id, result, done = std::move(done)] {
                     {
                       std::lock_guard lock(mutex_);
                       if (cancelled_.erase(attempt_id)) return;
                     }
                     done(result);
                   });
}

void SimulatedDialer::cancel(const std::string& attempt_id) {
  std::lock_guard lock(mutex_);
  cancelled_.insert(attempt_id);
}

std::vector<SimulatedDialer::Dialed> SimulatedDialer::dialed() const {
  std::lock_guard lock(mutex_);
  return dialed_;
}

// ---- webhook ----

WebhookDialer::WebhookDialer(WebhookDialerSettings settings, http::Transport& transport)
    : settings_(std::move(settings)), transport_(transport) {}

std::string WebhookDialer::request_body(const DialRequest& r, const std::string& callback_base) {
  json responses = json::object();
  for (const auto& [key, response] : r.responses)
    responses[std::to_string(key)] =
        json{{"type", to_string(response.reaction)}, {"message", response.message}};
  json body{
      {"attemptId", r.attempt_id},
      {"chainId", r.chain_id},
      {"contact", json{{"id", r.contact.id}, {"name", r.contact.name}, {"phone", r.contact.phone}}},
      {"loop", r.loop},
      {"message", r.message},
      {"responses", responses},
      {"ringTimeoutSeconds", r.ring_timeout.count() / 1000}};
  if (!callback_base.empty())
    body["callbackUrl"] = callback_base + "/v1/escalation/dial/" + r.attempt_id + "/result";
  return body.dump();
}

std::optional<DialResult> parse_dial_result(const json& body, std::string& error) {
  if (!body.is_object()) {
    error = "the dial result must be a JSON object";
    return std::nullopt;
  }
  std::optional<int> key;
  for (const char* name : {"key", "keyInput"}) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) continue;
    if (it->is_number_integer()) key = it->get<int>();
    if (it->is_string() && it->get<std::string>().size() == 1 &&
        std::isdigit(static_cast<unsigned char>(it->get<std::string>()[0])))
      key = it->get<std::string>()[0] - '0';
    if (!key || *key < 0 || *key > 9) {
      error = std::string("\"") + name + "\" must be a digit 0-9";
      return std::nullopt;
    }
  }
  auto it = body.find("outcome");
  if (it == body.end() || !it->is_string()) {
    if (key) return DialResult{AttemptOutcome::succeeded, key, ""};
    return std::nullopt;  // pending
  }
  auto outcome = attempt_outcome_from_string(it->get<std::string>());
  if (!outcome || *outcome == AttemptOutcome::aborted) {
    error = "\"outcome\" must be succeeded, ignored, missed or failed";
    return std::nullopt;
  }
  if (*outcome == AttemptOutcome::succeeded && !key) {
    error = "\"outcome\": \"succeeded\" needs \"key\"";
    return std::nullopt;
  }
  DialResult result{*outcome, *outcome == AttemptOutcome::succeeded ? key : std::nullopt,
                    body.value("error", "")};
  return result;
}

void WebhookDialer::dial(const DialRequest& request, DialCompletion done) {
  http::Request req;
  req.method = "POST";
  req.url = settings_.url;
  req.headers = settings_.headers;
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = request_body(request, settings_.callback_base);
  req.timeout = settings_.timeout;
  {
    // Registered first: the callback can arrive before the gateway's answer does.
    std::lock_guard lock(mutex_);
    pending_[request.attempt_id] = done;
  }
  http::Outcome outcome = transport_.perform(req);
  auto take = [&]() -> DialCompletion {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(request.attempt_id);
    if (it == pending_.end()) return {};
    DialCompletion d = std::move(it->second);
    pending_.erase(it);
    return d;
  };
  if (!outcome.ok()) {
    std::string error = outcome.kind == http::OutcomeKind::response
                            ? "dial webhook answered HTTP " + std::to_string(outcome.status)
                            : "dial webhook: " + std::string(http::to_string(outcome.kind)) +
                                  (outcome.error.empty() ? "" : " (" + outcome.error + ")");
    if (auto d = take()) d(DialResult{AttemptOutcome::failed, std::nullopt, error});
    return;
  }
  if (outcome.body.empty() || outcome.status == 202) return;  // result comes by callback
  json body = json::parse(outcome.body, nullptr, false);
  std::string error;
  std::optional<DialResult> result;
  if (body.is_discarded())
    error = "dial webhook answered a body that is not JSON";
  else
    result = parse_dial_result(body, error);
  if (result) {
    if (auto d = take()) d(*result);
  } else if (!error.empty()) {
    if (auto d = take()) d(DialResult{AttemptOutcome::failed, std::nullopt, error});
  }
}

void WebhookDialer::cancel(const std::string& attempt_id) {
  std::lock_guard lock(mutex_);
  pending_.erase(attempt_id);
}

bool WebhookDialer::complete(const std::string& attempt_id, const DialResult& result,
                             std::string& error) {
  DialCompletion done;
  {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(attempt_id);
    if (it == pending_.end()) {
      error = "no call " + attempt_id + " is waiting for a result";
      return false;
    }
    done = std::move(it->second);
    pending_.erase(it);
  }
  done(result);
  return true;
}

std::size_t WebhookDialer::pending() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

}  // namespace callbridge::escalation
