// The running kintone connector in `serve`: one Client per connection, OAuth tokens and their
// routes, the customer directory with its sync thread, CUSTOMER_* variables for every event,
// and the connector's /metrics lines.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/kintone/client.h"
#include "connectors/kintone/config.h"
#include "connectors/kintone/directory.h"
#include "connectors/kintone/oauth.h"
#include "rules/host.h"

namespace callbridge::kintone {

class KintoneService final : public rules::Service {
 public:
  using Log = std::function<void(const std::string& line)>;
  static constexpr const char* kName = "kintone";

  // `store` keeps OAuth tokens (may be null in tests: memory only). `log` gets progress lines.
  // With `leases` (and a store) the directory and the token refreshes are the cluster's: one
  // node syncs and refreshes, every node reads the result from the store (SharedDirectory).
  KintoneService(std::shared_ptr<const KintoneSettings> settings, http::Transport& transport,
                 rules::KeyValueStore* store, Log log = {}, rules::Leases* leases = nullptr);
  ~KintoneService() override;

  Client* client(std::string_view connection) const;
  OAuthTokens* oauth(std::string_view connection) const;
  DirectorySync* directory() const { return sync_.get(); }
  SharedDirectory* shared_directory() const { return shared_.get(); }

  void start() override;
  void stop() override;
  // CUSTOMER_FOUND (1/0), CUSTOMER_ID, CUSTOMER_NAME, CUSTOMER_COMPANY, CUSTOMER_TEL (as stored
  // in kintone) for the event's TEL. An event without a TEL leaves the call's values alone.
  void enrich(const rules::EventInput& event, rules::Variables& vars) const override;
  void metrics(std::string& out) const override;

  // Each connection (auth kind, OAuth state and its authorize path, requests in flight,
  // requests today per app against the daily limit, failures by class) and the directory.
  // The counts are this process's: in memory, per node, since it started.
  nlohmann::json status() const;

  // GET /v1/kintone/oauth/{connection}/start, GET .../callback (no token: checks the state),
  // POST /v1/kintone/directory/sync, GET /v1/kintone/directory, GET /v1/kintone/connections
  // (status()).
  std::vector<rules::Route> routes();

 private:
  std::shared_ptr<const KintoneSettings> settings_;
  Log log_;
  std::map<std::string, std::shared_ptr<OAuthTokens>, std::less<>> oauth_;
  std::map<std::string, std::unique_ptr<Client>, std::less<>> clients_;
  std::shared_ptr<Directory> directory_;
  std::unique_ptr<DirectorySync> sync_;
  std::unique_ptr<SharedDirectory> shared_;
};

}  // namespace callbridge::kintone
