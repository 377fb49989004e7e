#include "connectors/kintone/oauth.h"

#include <openssl/rand.h>

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "rules/template.h"

namespace callbridge::kintone {

using nlohmann::json;

namespace {

// A token request (code or refresh grant) to kintone's /oauth2/token.
constexpr auto kTokenRequestTimeout = std::chrono::seconds(10);
// Requests that saw the same 401 within this of a refresh take its token instead of refreshing.
constexpr auto kRefreshDebounce = std::chrono::seconds(2);

std::string random_state() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // Practically unreachable; a predictable state would defeat the CSRF check, so fail loud.
    throw std::runtime_error("no randomness for the OAuth state");
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

long long to_unix(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

OAuthTokens::OAuthTokens(std::string connection, std::string base_url, OAuthSettings settings,
                         http::Transport& transport, rules::KeyValueStore* store, Clock clock,
                         rules::Leases* leases)
    : connection_(std::move(connection)),
      settings_(std::move(settings)),
      transport_(transport),
      store_(store),
      clock_(std::move(clock)),
      leases_(store ? leases : nullptr) {
  if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  if (settings_.authorization_url.empty())
    settings_.authorization_url = base_url + "/oauth2/authorization";
  if (settings_.token_url.empty()) settings_.token_url = base_url + "/oauth2/token";
}

std::string OAuthTokens::authorization_url() {
  std::string state = random_state();
  {
    std::lock_guard lock(mutex_);
    auto t = now();
    for (auto it = states_.begin(); it != states_.end();)
      it = it->second < t ? states_.erase(it) : std::next(it);
    states_[state] = t + settings_.state_lifetime;
  }
  return settings_.authorization_url + "?client_id=" + rules::percent_encode(settings_.client_id) +
         "&redirect_uri=" + rules::percent_encode(settings_.redirect_uri) + "&state=" + state +
         "&response_type=code&scope=" + rules::percent_encode(settings_.scope);
}

bool OAuthTokens::complete(std::string_view code, std::string_view state, std::string& error) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(std::string(state));
  if (state.empty() || it == states_.end() || it->second < now()) {
    error = "unknown or expired OAuth state; start again from /v1/kintone/oauth/" + connection_ +
            "/start";
    return false;
  }
  states_.erase(it);  // one use only
  if (code.empty()) {
    error = "kintone sent no authorization code";
    return false;
  }
  loaded_ = true;  // what is stored is replaced
  return request_tokens("grant_type=authorization_code&redirect_uri=" +
                            rules::percent_encode(settings_.redirect_uri) +
                            "&code=" + rules::percent_encode(code),
                        error);
}

bool OAuthTokens::request_tokens(const std::string& form, std::string& error) {
  http::Request r;
  r.method = "POST";
  r.url = settings_.token_url;
  // RFC 6749 2.3.1: the client credentials are form-encoded before they are joined.
  r.headers = {{"Authorization",
                "Basic " + rules::base64_encode(rules::percent_encode(settings_.client_id) + ":" +
                                                rules::percent_encode(settings_.client_secret))},
               {"Content-Type", "application/x-www-form-urlencoded"}};
  r.body = form;
  r.timeout = kTokenRequestTimeout;
  auto issued = now();
  http::Outcome o = transport_.perform(r);
  if (!o.ok()) {
    // Only the status and the OAuth error code: the body may echo what was sent.
    error = "token endpoint: ";
    if (o.kind != http::OutcomeKind::response) {
      error += std::string(http::to_string(o.kind));
    } else {
      error += std::to_string(o.status);
      auto body = json::parse(o.body, nullptr, false);
      if (body.is_object() && body.contains("error") && body["error"].is_string())
        error += " " + body["error"].get<std::string>();
    }
    return false;
  }
  auto body = json::parse(o.body, nullptr, false);
  if (!body.is_object() || !body.contains("access_token") || !body["access_token"].is_string()) {
    error = "token endpoint answered without an access_token";
    return false;
  }
  Tokens t;
  t.access = body["access_token"].get<std::string>();
  // kintone may keep the refresh token across refreshes; keep the old one when none comes back.
  if (body.contains("refresh_token") && body["refresh_token"].is_string())
    t.refresh = body["refresh_token"].get<std::string>();
  else if (tokens_)
    t.refresh = tokens_->refresh;
  long long lifetime = 3600;
  if (body.contains("expires_in")) {
    const auto& e = body["expires_in"];
    if (e.is_number_integer()) lifetime = e.get<long long>();
    if (e.is_string()) lifetime = std::atoll(e.get<std::string>().c_str());
  }
  t.expires_at = issued + std::chrono::seconds(lifetime);
  tokens_ = std::move(t);
  last_refresh_ = issued;
  std::string store_error;
  if (!store_tokens(store_error)) {
    error = "tokens obtained but not stored: " + store_error;
    return true;  // usable now; lost on restart
  }
  return true;
}

bool OAuthTokens::store_tokens(std::string& error) {
  if (!store_ || !tokens_) return true;
  json stored{{"access_token", tokens_->access},
              {"refresh_token", tokens_->refresh},
              {"expires_at", to_unix(tokens_->expires_at)}};
  // A refresh under the lease: written only while this node still holds it.
  if (leases_ && fence_)
    return leases_->put_fenced(kNamespace, connection_, stored.dump(), *fence_, error);
  return store_->put(kNamespace, connection_, stored.dump(), error);
}

bool OAuthTokens::reload_shared() {
  if (!leases_) return false;
  auto stored = store_->get(kNamespace, connection_);
  if (!stored) return false;
  auto j = json::parse(*stored, nullptr, false);
  if (!j.is_object() || !j.contains("access_token")) return false;
  std::string access = j.value("access_token", "");
  if (tokens_ && tokens_->access == access) return false;
  Tokens t;
  t.access = std::move(access);
  t.refresh = j.value("refresh_token", "");
  t.expires_at =
      std::chrono::system_clock::time_point(std::chrono::seconds(j.value("expires_at", 0LL)));
  tokens_ = std::move(t);
  last_refresh_ = now();  // a fresh token from another node: a 401 seen before it is stale
  return true;
}

std::optional<std::string> OAuthTokens::refresh_shared(bool force_refresh, std::string& error) {
  auto usable = [&] { return now() + settings_.refresh_margin < tokens_->expires_at; };
  // Another node may have refreshed it already.
  if (reload_shared() && usable()) return tokens_->access;
  std::string name = lease_name(connection_);
  auto deadline = now() + kTokenRequestTimeout + std::chrono::seconds(2);
  for (;;) {
    if (auto epoch = leases_->acquire(name)) {
      // Read once more under the lease: the last holder's token is in the store now.
      if (reload_shared() && usable()) {
        leases_->release(name, *epoch);
        return tokens_->access;
      }
      if (tokens_->refresh.empty()) {
        leases_->release(name, *epoch);
        error = "the access token expired and there is no refresh token; authorize again";
        return std::nullopt;
      }
      ++refreshes_;
      fence_ = rules::LeaseFence{name, *epoch};
      bool ok = request_tokens(
          "grant_type=refresh_token&refresh_token=" + rules::percent_encode(tokens_->refresh),
          error);
      fence_.reset();
      leases_->release(name, *epoch);
      if (ok) return tokens_->access;
      if (!force_refresh && now() < tokens_->expires_at) return tokens_->access;
      return std::nullopt;
    }
    // Another node is refreshing: wait for its token.
    if (now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (reload_shared()) return tokens_->access;
  }
  error = "another node is refreshing the token of connection \"" + connection_ +
          "\" and has not finished";
  if (!force_refresh && now() < tokens_->expires_at) return tokens_->access;
  return std::nullopt;
}

void OAuthTokens::load() const {
  if (loaded_) return;
  loaded_ = true;
  if (!store_) return;
  auto stored = store_->get(kNamespace, connection_);
  if (!stored) return;
  auto j = json::parse(*stored, nullptr, false);
  if (!j.is_object() || !j.contains("access_token")) return;
  Tokens t;
  t.access = j.value("access_token", "");
  t.refresh = j.value("refresh_token", "");
  t.expires_at =
      std::chrono::system_clock::time_point(std::chrono::seconds(j.value("expires_at", 0LL)));
  tokens_ = std::move(t);
}

std::optional<std::string> OAuthTokens::access_token(bool force_refresh, std::string& error) {
  std::lock_guard lock(mutex_);
  load();
  if (!tokens_) reload_shared();  // authorized through another node
  if (!tokens_) {
    error = "connection \"" + connection_ + "\" is not authorized yet; open /v1/kintone/oauth/" +
            connection_ + "/start";
    return std::nullopt;
  }
  auto t = now();
  // Cluster: another node may have refreshed it; a newer token in the store is taken as it is.
  if (leases_ && (force_refresh || t + settings_.refresh_margin >= tokens_->expires_at) &&
      reload_shared() && t + settings_.refresh_margin < tokens_->expires_at)
    return tokens_->access;
  // Several requests may see the same 401: the first refreshes, the others take its token.
  if (force_refresh && t - last_refresh_ < kRefreshDebounce && t < tokens_->expires_at)
    force_refresh = false;
  if (!force_refresh && t + settings_.refresh_margin < tokens_->expires_at) return tokens_->access;
  if (leases_) return refresh_shared(force_refresh, error);
  if (tokens_->refresh.empty()) {
    error = "the access token expired and there is no refresh token; authorize again";
    return std::nullopt;
  }
  ++refreshes_;
  if (!request_tokens(
          "grant_type=refresh_token&refresh_token=" + rules::percent_encode(tokens_->refresh),
          error)) {
    // A token still valid for a few seconds is better than none.
    if (!force_refresh && t < tokens_->expires_at) return tokens_->access;
    return std::nullopt;
  }
  return tokens_->access;
}

bool OAuthTokens::authorized() const {
  std::lock_guard lock(mutex_);
  load();
  return tokens_.has_value();
}

int OAuthTokens::refreshes() const {
  std::lock_guard lock(mutex_);
  return refreshes_;
}

}  // namespace callbridge::kintone
