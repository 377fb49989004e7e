// Places one phone call of a chain and reports how it went. Asynchronous: `dial` returns at once
// and `done` is called exactly once later (not at all after `cancel`), from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/escalation/model.h"
#include "connectors/escalation/timer_queue.h"
#include "http/http_client.h"

namespace callbridge::escalation {

struct DialRequest {
  std::string chain_id;
  std::string attempt_id;
  Contact contact;
  int loop = 1;
  int position = 0;
  std::string message;                   // the guidance message, rendered
  std::map<int, KeyResponse> responses;  // rendered response messages by key
  std::chrono::milliseconds ring_timeout{30000};
};

struct DialResult {
  AttemptOutcome outcome = AttemptOutcome::failed;
  std::optional<int> key;  // with `succeeded`
  std::string error;
};
using DialCompletion = std::function<void(DialResult)>;

class Dialer {
 public:
  virtual ~Dialer() = default;
  virtual std::string_view name() const = 0;
  virtual void dial(const DialRequest& request, DialCompletion done) = 0;
  virtual void cancel(const std::string& /*attempt_id*/) {}
};

// A scripted answer: `key N`, `no-key` (answered, nothing pressed; `voicemail` too), `no-answer`
// (rings out after the ring timeout), `fail`; optionally `after S` seconds of ringing.
struct ScriptedAnswer {
  enum class Kind { key, no_key, no_answer, fail };
  Kind kind = Kind::no_answer;
  int key = 0;
  std::optional<std::chrono::milliseconds> ring;  // unset: at once (no-answer: ring timeout)

  // "key 1", "1", "no-key", "voicemail", "no-answer", "fail", each optionally "... after 5".
  static std::optional<ScriptedAnswer> parse(std::string_view text, std::string& error);
  std::string describe() const;
};

// Answers from a script per contact and loop (entry N is loop N+1; the last entry repeats);
// contacts without a script get `fallback`. For tests, demos and dry runs.
class SimulatedDialer final : public Dialer {
 public:
  using Script = std::map<std::string, std::vector<ScriptedAnswer>, std::less<>>;
  SimulatedDialer(TimerQueue& timers, Script script, ScriptedAnswer fallback = {});
  std::string_view name() const override { return "simulate"; }
  void dial(const DialRequest& request, DialCompletion done) override;
  void cancel(const std::string& attempt_id) override;

  struct Dialed {
    std::string chain_id, attempt_id, contact_id;
    int loop = 0;
    std::string message;
  };
  std::vector<Dialed> dialed() const;
  void set_script(const std::string& contact_id, std::vector<ScriptedAnswer> answers);

 private:
  TimerQueue& timers_;
  mutable std::mutex mutex_;
  Script script_;
  ScriptedAnswer fallback_;
  std::vector<Dialed> dialed_;
  std::set<std::string> cancelled_;
};

struct WebhookDialerSettings {
  std::string url;
  http::Headers headers;  // values may be secrets; never shown
  std::chrono::milliseconds timeout{10000};
  std::string callback_base;  // e.g. http://bridge:8080, for the callback URL in the request
};

// POSTs each call as JSON to a telephony gateway. The answer's body carries the outcome
// ({"outcome": "succeeded", "key": 1}), or says it comes later ({"status": "pending"}) through
// POST /v1/escalation/dial/{attemptId}/result with the same shape.
class WebhookDialer final : public Dialer {
 public:
  WebhookDialer(WebhookDialerSettings settings, http::Transport& transport);
  std::string_view name() const override { return "webhook"; }
  void dial(const DialRequest& request, DialCompletion done) override;
  void cancel(const std::string& attempt_id) override;
  // A later result for a pending attempt; false (with `error`) when it is not pending.
  bool complete(const std::string& attempt_id, const DialResult& result, std::string& error);
  std::size_t pending() const;

  static std::string request_body(const DialRequest& request, const std::string& callback_base);

 private:
  WebhookDialerSettings settings_;
  http::Transport& transport_;
  mutable std::mutex mutex_;
  std::map<std::string, DialCompletion> pending_;
};

// Reads {"outcome": "...", "key": N} (also "keyInput", and a bare key meaning succeeded).
// nullopt: no outcome in it (pending); `error` says what was wrong when it is malformed.
std::optional<DialResult> parse_dial_result(const nlohmann::json& body, std::string& error);

}  // namespace callbridge::escalation
