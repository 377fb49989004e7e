// `callbridge serve` as a test fixture: a configuration in a scratch directory (listening on
// port 0, one token, the journal beside it), the real binary started on it, and a client.
#pragma once

#include <httplib.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/fakes/subprocess.h"

namespace callbridge::testing {

inline const std::string kBridgeToken = "test-token-0123456789abcdef";

struct Bridge {
  TempDir dir;
  std::string config_path;
  std::unique_ptr<ServerProcess> process;

  // `extra` goes between the storage section and `body` (connector sections, dispatcher...).
  void write_config(const std::string& body, const std::string& extra = "");
  // False when the bridge did not start (its log says why: process->log()).
  bool start(const std::map<std::string, std::string>& env = {});
  int port() const { return process->port(); }
  // A client that sends the token as a Bearer header.
  httplib::Client client() const;
  httplib::Result post_event(const nlohmann::json& event) const;
  // The call's history (GET /v1/calls/{id}); null when there is none.
  nlohmann::json call(const std::string& id) const;
  // Polls the history until `events` events of the call are finished (or ~20 s pass).
  nlohmann::json wait_done(const std::string& id, std::size_t events) const;
};

// The `error.code` of a JSON error answer, or what came instead.
std::string error_code(const httplib::Result& r);

}  // namespace callbridge::testing
