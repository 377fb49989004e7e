#include "connectors/kintone/command.h"

#include <ostream>

namespace callbridge::kintone {

namespace {

// POST /v1/kintone/directory/sync?wait=1 on the bridge the configuration describes.
// `--url` not given: http:// and server.listen (a wildcard address as loopback).
int directory_sync(const rules::CommandContext& ctx) {
  const rules::Config& config = ctx.config;
  auto given = ctx.options.find("url");
  std::string base_url = given == ctx.options.end() ? std::string() : given->second;
  if (base_url.empty()) {
    std::string host = config.server.listen.substr(0, config.server.listen.rfind(':'));
    if (host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
    base_url = "http://" + host + config.server.listen.substr(config.server.listen.rfind(':'));
  }
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  http::Request request;
  request.method = "POST";
  request.url = base_url + "/v1/kintone/directory/sync?wait=1";
  if (!config.server.tokens.empty())
    request.headers.emplace_back("Authorization", "Bearer " + config.server.tokens.front());
  request.timeout = std::chrono::minutes(10);
  auto outcome = ctx.transport.perform(request);
  if (outcome.kind != http::OutcomeKind::response) {
    ctx.err << "cannot reach the bridge at " << base_url << ": "
            << config.secrets->redact(outcome.error) << "\n";
    return 1;
  }
  ctx.out << config.secrets->redact(outcome.body) << "\n";
  return outcome.ok() ? 0 : 1;
}

}  // namespace

rules::Command directory_sync_command() {
  return {"directory-sync",
          "Ask the running bridge to sync the kintone customer directory now",
          {{"url", "The bridge's base URL (default: http:// and server.listen)"}},
          directory_sync};
}

}  // namespace callbridge::kintone
