#include "connectors/commubo/service.h"

#include <condition_variable>
#include <nlohmann/json.hpp>

#include "connectors/commubo/action.h"
#include "connectors/commubo/payload.h"

namespace callbridge::commubo {

namespace {

long long epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Waits for the first `decide` rule of one event, or its end.
class DecisionWaiter final : public rules::EventObserver {
 public:
  void on_rule(const rules::RuleOutcome& outcome, const rules::Variables& /*vars*/) override {
    if (outcome.status != rules::RuleStatus::succeeded) return;
    auto status = outcome.extracted.find(kDecisionStatus);
    if (status == outcome.extracted.end()) return;
    std::optional<int> code = parse_decision_status(status->second);
    if (!code) return;
    std::lock_guard lock(mutex_);
    if (answer_) return;  // the first decision answers; later ones only change the history
    CommuboAnswer answer;
    answer.status = *code;
    if (auto body = outcome.extracted.find(kDecisionBody); body != outcome.extracted.end())
      answer.body = body->second;
    answer.reason = "decided";
    answer.rule = outcome.rule;
    answer_ = std::move(answer);
    cv_.notify_all();
  }
  void on_finished(const rules::Variables& /*vars*/) override {
    std::lock_guard lock(mutex_);
    finished_ = true;
    cv_.notify_all();
  }
  // The decision, {} when the rules finished without one, nullopt at the deadline.
  std::optional<std::optional<CommuboAnswer>> wait_until(
      std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    cv_.wait_until(lock, deadline, [&] { return answer_ || finished_; });
    if (answer_) return answer_;
    if (finished_) return std::optional<CommuboAnswer>{};
    return std::nullopt;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<CommuboAnswer> answer_;
  bool finished_ = false;
};

}  // namespace

CommuboService::CommuboService(CommuboSettings settings, rules::KeyValueStore& store,
                               rules::EventSink& events, rules::InputLimits limits)
    : settings_(std::move(settings)), limits_(limits), store_(store), events_(events) {}

rules::Route CommuboService::route() {
  rules::Route route;
  route.method = "POST";
  route.pattern = std::string(kCommuboPath);
  // commubo registers a bare URL: the token travels as ?token= (checked by the server).
  route.auth = rules::RouteAuth::token;
  route.handler = [this](const rules::HttpRequest& request, rules::HttpResponse& response) {
    handle(request, response);
  };
  return route;
}

void CommuboService::handle(const rules::HttpRequest& request, rules::HttpResponse& response) {
  const auto received = std::chrono::steady_clock::now();
  const auto deadline = received + settings_.deadline;
  auto error_key = [&] {
    return "error-" + std::to_string(epoch_ms()) + "-" + std::to_string(++sequence_);
  };

  std::string error;
  auto event = commubo_event_from_text(request.body, error, limits_);
  if (!event) {
    answer({settings_.on_error_status, "", "error", ""}, error_key(), "", "",
           "invalid_payload: " + error, received, response);
    return;
  }

  auto waiter = std::make_shared<DecisionWaiter>();
  rules::SubmitRejection rejection;
  std::optional<rules::SubmittedEvent> submitted;
  try {
    submitted = events_.submit(*event, waiter, rejection);
  } catch (const std::exception& e) {  // a bridge fault must not hang up on the caller
    rejection.set(503, rules::ErrorCode::journal_unavailable, e.what());
  }
  if (!submitted) {
    std::string code(rules::to_string(rejection.error_code()));
    answer({settings_.on_error_status, "", "error", ""}, error_key(), event->call_id, "",
           code + ": " + rejection.message, received, response);
    return;
  }

  auto result = waiter->wait_until(deadline);
  CommuboAnswer chosen;
  if (!result) {
    chosen = {settings_.default_status, settings_.default_body, "deadline", ""};
  } else if (!*result) {
    chosen = {settings_.default_status, settings_.default_body, "default", ""};
  } else {
    chosen = **result;
  }
  answer(chosen, submitted->event_id, submitted->call_id, submitted->event_id, "", received,
         response);
}

void CommuboService::answer(const CommuboAnswer& chosen, const std::string& key,
                            const std::string& call_id, const std::string& event_id,
                            const std::string& detail,
                            std::chrono::steady_clock::time_point received,
                            rules::HttpResponse& response) {
  const long long elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - received)
                                .count();
  nlohmann::json record = {{"status", chosen.status},
                           {"body", chosen.body},
                           {"reason", chosen.reason},
                           {"answered_at_ms", epoch_ms()},
                           {"elapsed_ms", elapsed}};
  if (!call_id.empty()) record["call_id"] = call_id;
  if (!event_id.empty()) record["event_id"] = event_id;
  if (!chosen.rule.empty()) record["rule"] = chosen.rule;
  if (!detail.empty()) record["error"] = detail;
  // Best effort: the caller is waiting, and the answer matters more than its record.
  try {
    // An answer about a stored event is a note on it, shown in the call's history; one given
    // without an event (a malformed payload, the journal down) has only its own namespace.
    std::string text = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    // Queued, not awaited: the answer must not wait for a commit.
    if (event_id.empty())
      store_.put_later(kCommuboAnswers, key, text);
    else
      store_.put_later(rules::kEventNotes, event_id + "/commubo", text);
  } catch (const std::exception&) {
  }

  response.status = chosen.status;
  response.headers.clear();
  if (!chosen.body.empty()) {
    bool is_json = nlohmann::json::accept(chosen.body);
    response.content_type = is_json ? "application/json" : "text/plain; charset=utf-8";
    response.body = chosen.body;
  } else {
    nlohmann::json summary = {{"action", chosen.status == 200 ? "continue" : "reject"},
                              {"status", chosen.status},
                              {"reason", chosen.reason}};
    if (!call_id.empty()) summary["call_id"] = call_id;
    if (!event_id.empty()) summary["event_id"] = event_id;
    if (!chosen.rule.empty()) summary["rule"] = chosen.rule;
    if (!detail.empty()) summary["error"] = detail;
    response.content_type = "application/json";
    response.body = summary.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::lock_guard lock(metrics_mutex_);
  ++answers_[{chosen.reason, chosen.status}];
}

void CommuboService::metrics(std::string& out) const {
  std::lock_guard lock(metrics_mutex_);
  out += "# TYPE callbridge_commubo_answers_total counter\n";
  for (const auto& [key, count] : answers_)
    out += "callbridge_commubo_answers_total{reason=\"" + key.first + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
}

}  // namespace callbridge::commubo
