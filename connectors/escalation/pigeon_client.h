// Kompira Pigeon as the chain backend: POST /api/apps/pigeon/chain/invoke (by callflowId and
// guidanceId, or inline), GET /api/apps/pigeon/results/{resultId} until isActive is false,
// POST /api/apps/pigeon/chain/abort; every request carries `X-Authorization: Token T`.
#pragma once

#include <chrono>
#include <string>

#include "connectors/escalation/engine.h"
#include "http/http_client.h"

namespace callbridge::escalation {

struct PigeonSettings {
  std::string base_url;  // https://SPACE.cloud.kompira.jp (no trailing slash needed)
  std::string token;     // secret
  std::chrono::milliseconds timeout{10000};
};

class PigeonClient final : public RemoteChains {
 public:
  PigeonClient(PigeonSettings settings, http::Transport& transport);

  Invoked invoke(const ChainState& state) override;
  Polled poll(const std::string& result_id) override;
  bool abort(const std::string& result_id, std::string& error) override;
  bool apply(const nlohmann::json& result, ChainState& state) const override;

  // The body of chain/invoke for `state`: ids when it refers to Pigeon's objects, else inline.
  static nlohmann::json invoke_body(const ChainState& state);

 private:
  http::Request request(std::string method, const std::string& path, std::string body) const;

  PigeonSettings settings_;
  http::Transport& transport_;
};

// Milliseconds since the epoch of "2024-05-01T09:30:00(.123)(Z|+09:00)"; 0 when unreadable.
Millis parse_iso8601(std::string_view text);

}  // namespace callbridge::escalation
