// OAuth 2.0 for kintone (cybozu.com's authorization code grant): the authorization URL with a
// one-time state, the code exchange, and access tokens refreshed before they expire (60 s margin)
// and once more when kintone answers 401. Tokens persist in the bridge's key-value store
// (namespace "kintone.oauth") and never appear in logs, errors or metrics. In a cluster (with
// leases) one node refreshes a connection's token at a time, under the lease
// `singleton:kintone-oauth:<connection>`, and every node reads the token from the store again
// when its own copy expires or kintone answers 401.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "connectors/kintone/client.h"
#include "http/http_client.h"
#include "rules/host.h"

namespace callbridge::kintone {

struct OAuthSettings {
  std::string client_id;
  std::string client_secret;
  std::string redirect_uri;  // registered at cybozu.com; the bridge's .../callback route
  std::string scope = "k:app_record:read k:app_record:write";
  std::string authorization_url;  // default BASE/oauth2/authorization
  std::string token_url;          // default BASE/oauth2/token
  std::chrono::seconds refresh_margin{60};
  std::chrono::seconds state_lifetime{600};
};

class OAuthTokens final : public TokenProvider {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  static constexpr const char* kNamespace = "kintone.oauth";

  // `store` may be null (tokens then live in memory only). `base_url` fills unset endpoints.
  OAuthTokens(std::string connection, std::string base_url, OAuthSettings settings,
              http::Transport& transport, rules::KeyValueStore* store, Clock clock = {},
              rules::Leases* leases = nullptr);
  static std::string lease_name(std::string_view connection) {
    return "singleton:kintone-oauth:" + std::string(connection);
  }

  // Where to send the administrator's browser; remembers a fresh one-time `state`.
  std::string authorization_url();
  // The redirect back: checks `state`, exchanges `code`, stores the tokens.
  bool complete(std::string_view code, std::string_view state, std::string& error);

  std::optional<std::string> access_token(bool force_refresh, std::string& error) override;

  bool authorized() const;
  int refreshes() const;
  const std::string& connection() const { return connection_; }

 private:
  struct Tokens {
    std::string access, refresh;
    std::chrono::system_clock::time_point expires_at;
  };
  bool request_tokens(const std::string& form, std::string& error);  // mutex_ held
  void load() const;                                                 // mutex_ held
  // Cluster: the stored token when it differs from ours (another node refreshed it).
  bool reload_shared();                                                               // mutex_ held
  std::optional<std::string> refresh_shared(bool force_refresh, std::string& error);  // held
  bool store_tokens(std::string& error);                                              // mutex_ held
  std::chrono::system_clock::time_point now() const { return clock_(); }

  std::string connection_;
  OAuthSettings settings_;
  http::Transport& transport_;
  rules::KeyValueStore* store_;
  Clock clock_;
  rules::Leases* leases_;
  std::optional<rules::LeaseFence> fence_;  // while this node refreshes under the lease

  mutable std::mutex mutex_;
  mutable bool loaded_ = false;
  mutable std::optional<Tokens> tokens_;
  std::chrono::system_clock::time_point last_refresh_{};
  int refreshes_ = 0;
  std::map<std::string, std::chrono::system_clock::time_point> states_;
};

}  // namespace callbridge::kintone
