// The web console: its static pages (compiled into the binary), sign-in with sessions, and the
// JSON endpoints under /console/api/ that the pages use (and scripts may, with a bridge token).
// docs/console.md describes the pages, docs/api.md the endpoints.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bridge/console_auth.h"
#include "bridge/dispatcher.h"
#include "bridge/journal/journal.h"
#include "http/http_client.h"
#include "rules/host.h"
#include "rules/registry.h"

namespace callbridge::bridge {

struct ConsoleContext {
  const ConfigHolder& config;
  Journal& journal;
  http::Transport& transport;       // replays send through it
  const rules::Services* services;  // for typed actions in replays; may be null
  std::string config_path;          // the file reload reads; empty: embedded defaults
  const rules::Registry* registry;  // what that file is loaded with (validation, reload)
  std::function<std::size_t()> queue_depth = [] { return std::size_t{0}; };
  // Asks the running bridge to reload its rules (SIGHUP); null: reload is refused.
  std::function<void()> reload;
};

class Console : public std::enable_shared_from_this<Console> {
 public:
  explicit Console(ConsoleContext context);
  // Appends the console's routes (each holds the console). They authenticate themselves:
  // a session cookie (with X-CSRF-Token on POST) or a bridge token.
  void add_routes(std::vector<rules::Route>& routes);
  ConsoleSessions& sessions() { return sessions_; }

 private:
  struct Principal;
  void handle(const rules::HttpRequest& req, rules::HttpResponse& res);
  std::optional<Principal> authenticate(const rules::HttpRequest& req);
  void login(const rules::HttpRequest& req, rules::HttpResponse& res);
  void api(const rules::HttpRequest& req, rules::HttpResponse& res, const Principal& who);
  void calls(const rules::HttpRequest& req, rules::HttpResponse& res);
  void failures(const rules::HttpRequest& req, rules::HttpResponse& res);
  void replay(const rules::HttpRequest& req, rules::HttpResponse& res);
  void rules_in_force(rules::HttpResponse& res);
  void simulate(const rules::HttpRequest& req, rules::HttpResponse& res, const Principal& who);
  void forward(const rules::HttpRequest& req, rules::HttpResponse& res, const Principal& who,
               const std::string& path);
  void validate(rules::HttpResponse& res, bool then_reload);
  void overview(const rules::HttpRequest& req, rules::HttpResponse& res);

  ConsoleContext context_;
  const std::vector<rules::Route>* routes_ = nullptr;  // the connectors' (and the console's)
  ConsoleSessions sessions_;
  SignInLimiter limiter_;
  std::mutex replay_mutex_;  // one replay at a time: two would both retry the same action
};

// Adds the security headers every console answer carries (CSP without inline scripts,
// X-Frame-Options DENY, nosniff, no referrer, no caching of data).
void add_console_headers(rules::HttpResponse& res);

}  // namespace callbridge::bridge
