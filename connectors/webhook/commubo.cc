#include "connectors/webhook/commubo.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <condition_variable>
#include <nlohmann/json.hpp>

#include "connectors/webhook/decide.h"
#include "rules/config_reader.h"

namespace callbridge::webhook {

namespace {

constexpr std::size_t kMaxTel = 64;

std::string scalar_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_null()) return {};
  return v.dump();
}

// Objects become NAME_FIELD, arrays NAME (comma-joined scalars) plus NAME_1..NAME_N. The
// recursion is as deep as the payload, which the bounded parse limits; `budget` is what the
// names and values may still add up to. False when they would exceed it.
bool flatten(const nlohmann::json& value, const std::string& name, rules::Variables& vars,
             std::size_t& budget) {
  auto spend = [&](std::size_t bytes) {
    if (bytes > budget) return false;
    budget -= bytes;
    return true;
  };
  if (value.is_object()) {
    for (const auto& [key, child] : value.items())
      if (!flatten(child, name + "_" + upper_snake(key), vars, budget)) return false;
  } else if (value.is_array()) {
    std::string joined;
    std::size_t index = 0;
    for (const auto& element : value) {
      ++index;
      if (!element.is_structured()) joined += (index > 1 ? "," : "") + scalar_text(element);
      if (!flatten(element, name + "_" + std::to_string(index), vars, budget)) return false;
    }
    if (!spend(name.size() + joined.size())) return false;
    vars[name] = joined;
  } else {
    std::string text = scalar_text(value);
    if (!spend(name.size() + text.size())) return false;
    vars[name] = std::move(text);
  }
  return true;
}

bool control_free(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

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

std::string upper_snake(std::string_view name, std::string_view strip) {
  if (!strip.empty() && name.size() > strip.size() && name.substr(0, strip.size()) == strip &&
      std::isupper(static_cast<unsigned char>(name[strip.size()])))
    name.remove_prefix(strip.size());
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (std::isupper(c) && i > 0) {
      unsigned char prev = static_cast<unsigned char>(name[i - 1]);
      bool next_lower =
          i + 1 < name.size() && std::islower(static_cast<unsigned char>(name[i + 1]));
      if (std::islower(prev) || std::isdigit(prev) || (std::isupper(prev) && next_lower))
        out += '_';
    }
    if (std::isalnum(c))
      out += static_cast<char>(std::toupper(c));
    else if (!out.empty() && out.back() != '_')
      out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

std::optional<rules::EventInput> commubo_event_from_json(const nlohmann::json& payload,
                                                         std::string& error,
                                                         const rules::InputLimits& limits) {
  if (!payload.is_object()) {
    error = "the commubo payload must be a JSON object";
    return std::nullopt;
  }
  rules::EventInput event;
  event.event = std::string(kCommuboEvent);
  event.answered = false;  // commubo calls before it answers

  auto call = payload.find("callId");
  std::optional<std::string> call_id;
  if (call != payload.end()) call_id = rules::call_id_text(*call);
  if (!call_id) {
    error = "\"callId\" is required: a string";
    return std::nullopt;
  }
  if (error = rules::check_call_id(*call_id, "callId"); !error.empty()) return std::nullopt;
  event.call_id = std::move(*call_id);
  if (auto tel = payload.find("phoneNumber"); tel != payload.end()) {
    if (!tel->is_string() && !tel->is_number() && !tel->is_null()) {
      error = "\"phoneNumber\" must be a string";
      return std::nullopt;
    }
    event.tel = scalar_text(*tel);
    if (event.tel.size() > kMaxTel || !control_free(event.tel)) {
      error = "\"phoneNumber\" must be at most 64 characters without control characters";
      return std::nullopt;
    }
  }

  bool customer_found = false;
  std::size_t budget = limits.max_expanded_bytes;
  auto too_large = [&] {
    error = "the payload expands into more than server.max_expanded_bytes (" +
            std::to_string(limits.max_expanded_bytes) + ") of variables";
    return std::nullopt;
  };
  for (const auto& [key, value] : payload.items()) {
    if (value.is_object()) {
      if (key == "customer") customer_found = true;
      // Fields repeat their object's name ("customerId"); COMMUBO_CUSTOMER_ID reads better.
      const std::string object = upper_snake(key);
      for (const auto& [field, child] : value.items()) {
        // The reference spells the voice ID field "operatorVocieId" once; accept both.
        std::string name = field == "operatorVocieId" ? "operatorVoiceId" : field;
        if (!flatten(child, "COMMUBO_" + object + "_" + upper_snake(name, key), event.vars, budget))
          return too_large();
      }
    } else if (!flatten(value, "COMMUBO_" + upper_snake(key), event.vars, budget)) {
      return too_large();
    }
  }
  event.vars["COMMUBO_CUSTOMER_FOUND"] = customer_found ? "1" : "0";
  return event;
}

std::optional<rules::EventInput> commubo_event_from_text(std::string_view body, std::string& error,
                                                         const rules::InputLimits& limits) {
  nlohmann::json payload = rules::parse_json_body(body, limits, error);
  if (payload.is_discarded()) {
    error = "invalid_json: " + error;
    return std::nullopt;
  }
  return commubo_event_from_json(payload, error, limits);
}

std::shared_ptr<const rules::Section> load_commubo_section(const YAML::Node& node,
                                                           rules::ConfigReader& reader) {
  auto settings = std::make_shared<CommuboSettings>();
  if (node.IsNull()) return settings;  // `commubo:` alone: the defaults
  if (!reader.expect_map(node, "commubo")) return nullptr;
  const std::size_t errors = reader.error_count();
  reader.check_keys(node, {"deadline_ms", "default_status", "default_body", "on_error_status"},
                    "commubo");
  if (auto n = node["deadline_ms"])
    if (auto v = reader.integer(n, "commubo.deadline_ms", 100, 10000))
      settings->deadline = std::chrono::milliseconds(*v);
  auto status = [&](const char* key, int& out) {
    if (auto n = node[key])
      if (auto v = reader.integer(n, std::string("commubo.") + key, 200, 599)) {
        if (*v > 200 && *v < 300)
          reader.error(n,
                       std::string("\"commubo.") + key +
                           "\": must be 200 (continue the call) or 300 to 599 (reject it), got " +
                           std::to_string(*v));
        else
          out = static_cast<int>(*v);
      }
  };
  status("default_status", settings->default_status);
  status("on_error_status", settings->on_error_status);
  if (auto n = node["default_body"])
    if (auto v = reader.string_setting(n, "commubo.default_body")) settings->default_body = *v;
  if (reader.error_count() != errors) return nullptr;
  return settings;
}

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
    rejection = {503, "journal_unavailable", e.what()};
  }
  if (!submitted) {
    std::string code = rejection.code.empty() ? "journal_unavailable" : rejection.code;
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

}  // namespace callbridge::webhook
