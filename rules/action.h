// Typed actions: what a rule does instead of (or beside the shape of) a raw `request`. A connector
// loads its action from the rule's YAML once, into an immutable object; the engine runs it after
// the rule's gate matched, exactly where a raw request would be sent.
#pragma once

#include <functional>
#include <string>

#include "http/http_client.h"
#include "rules/engine.h"

namespace callbridge::rules {

class Services;

// What a running action may use. Everything it reports goes into `RuleOutcome`.
struct ActionContext {
  CallContext& call;           // read and set variables here
  const SecretSet& secrets;    // redact anything shown or stored
  http::Transport* transport;  // null: dry run (render and show, do not perform)
  const Services* services;    // the bridge's running services; null outside `serve`
  // Call just before each request leaves, with the request as shown (secrets redacted); the
  // journal records the attempt there. False: the action must not send and reports failure.
  const std::function<bool(const http::Request& shown)>& before_send;
};

class Action {
 public:
  virtual ~Action() = default;
  // Performs the action once. Sets `out.status`, `out.request` (as shown), `out.response` (the
  // last exchange, which retry classification reads), `out.extracted` (also set in
  // ctx.call.vars), `out.sent`, `out.error`, and `out.retryable` when it knows better than the
  // HTTP status. Never throws for a CRM's trouble.
  virtual void run(ActionContext& ctx, RuleOutcome& out) const = 0;
  // True when performing it again is harmless (a read, a keyed upsert): retries after a timeout
  // and crash recovery may repeat it. False: an interrupted attempt is recorded `unknown`.
  virtual bool idempotent() const = 0;
  // One line for `simulate` and history ("kintone.find app 7 on customers").
  virtual std::string describe() const = 0;
};

}  // namespace callbridge::rules
