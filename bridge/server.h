// The HTTP face of the bridge: durable event intake, call history, health and metrics.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "bridge/dispatcher.h"
#include "bridge/intake.h"
#include "bridge/journal/journal.h"
#include "bridge/metrics.h"
#include "rules/host.h"

namespace callbridge::bridge {

// The event JSON of form fields or query parameters (`var.KEY=value` for vars), as POST and GET
// /v1/events read them; null with `error` when a parameter is not UTF-8.
nlohmann::json event_from_params(const std::multimap<std::string, std::string>& params,
                                 std::string& error);

class BridgeServer {
 public:
  // `routes` are the connectors' endpoints, mounted beside the bridge's own; `services` add
  // their lines to /metrics (may be null).
  BridgeServer(const ConfigHolder& config, Journal& journal, Dispatcher& dispatcher,
               Metrics& metrics, Intake& intake, const std::vector<rules::Route>& routes = {},
               const rules::Services* services = nullptr);
  ~BridgeServer();

  // Binds `host:port` (port 0: any free port). False with `error` when it cannot.
  bool bind(const std::string& listen, std::string& error);
  int port() const;
  void run();   // serves until stop()
  void stop();  // stops accepting; returns at once
  // Not ready from now on (/readyz answers 503 "draining"); everything else is served as before,
  // so that a load balancer moves traffic away before stop().
  void drain();
  bool draining() const;
  // Reads server.tls's certificate and key again, for new connections (no TLS: nothing to do).
  // False with `error` keeps the certificate in use.
  bool reload_tls(std::string& error);
  bool tls() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbridge::bridge
