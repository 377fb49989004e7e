// Runs the rules of one event of one call, in order: gate, render, perform, extract. Every
// outcome is a value; nothing here throws for a CRM's trouble.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "http/http_client.h"
#include "rules/config.h"

namespace callbridge::rules {

class Services;

struct EventInput {
  std::string event;  // canonical name
  std::string call_id;
  std::string tel;
  std::optional<bool> answered;
  Variables vars;  // supplied by the event
};

// The call's variables; they outlive one event and carry to the next.
struct CallContext {
  std::string call_id;
  Variables vars;
};

enum class RuleStatus {
  skipped,     // gate did not match
  succeeded,   // 2xx (or response://)
  http_error,  // a response with a non-2xx status
  failed,      // transport failure, render error or regex failure
};
std::string_view to_string(RuleStatus status);

struct RuleOutcome {
  std::string rule;
  RuleStatus status = RuleStatus::skipped;
  std::string gate;                      // why it ran or not, secrets redacted
  std::optional<http::Request> request;  // as sent, secrets redacted
  std::optional<http::Outcome> response;
  bool sent = false;                   // false in a dry run
  Variables extracted;                 // RESPONSE_* set by this rule
  std::vector<std::string> undefined;  // variables rendered empty
  std::string error;
  // Set by typed actions that know better than the HTTP status whether trying again can help
  // (a kintone 429 applied nothing; a validation error never succeeds). Unset: by status.
  std::optional<bool> retryable;

  // Adds the variables `report` rendered empty to `undefined`, each once.
  void note_undefined(const RenderReport& report);
};

class Engine {
 public:
  // `transport` null: dry run; requests are rendered but not sent and nothing is extracted.
  // `services`: the running bridge's connector services, for typed actions; null elsewhere.
  Engine(std::shared_ptr<const RuleSet> rules, std::shared_ptr<const SecretSet> secrets,
         http::Transport* transport, const Services* services = nullptr);

  // Sets the built-in variables from `event`, then runs its rules in order.
  std::vector<RuleOutcome> run(const EventInput& event, CallContext& call) const;

  // Built-ins and event variables as they enter the call's variables: defaults where the call
  // has no value yet, then what the event sets.
  static void apply_event(const EventInput& event, CallContext& call);
  static const Variables& variable_defaults();  // TEL=anonymous, ISANSWERED=0
  static Variables event_variables(const EventInput& event);

  // True when repeating the rule's action is harmless (GET/PUT/DELETE, or what a typed action
  // says of itself): decides retries after timeouts and what crash recovery repeats.
  static bool idempotent(const Rule& rule);

  // One attempt of one rule. `before_send` sees the redacted request just before it goes out
  // (the journal records it there); returning false aborts the attempt as failed.
  using BeforeSend = std::function<bool(const http::Request& shown)>;
  RuleOutcome run_rule(const Rule& rule, CallContext& call,
                       const BeforeSend& before_send = {}) const;

  const RuleSet& rules() const { return *rules_; }

 private:
  std::shared_ptr<const RuleSet> rules_;
  std::shared_ptr<const SecretSet> secrets_;
  http::Transport* transport_;
  const Services* services_;
};

}  // namespace callbridge::rules
