#include "bridge/console_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "rules/config_reader.h"

namespace callbridge::bridge {

namespace {

constexpr std::string_view kScheme = "pbkdf2-sha256";
constexpr int kMinIterations = 1000;
constexpr int kMaxIterations = 100000000;

std::string base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> unbase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  std::size_t padding = 0;
  if (text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

struct ParsedHash {
  int iterations = 0;
  std::string salt, hash;
};

std::optional<ParsedHash> parse_hash(std::string_view stored, std::string& problem) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    auto dollar = stored.find('$', start);
    parts.push_back(
        stored.substr(start, dollar == std::string_view::npos ? dollar : dollar - start));
    if (dollar == std::string_view::npos) break;
    start = dollar + 1;
  }
  if (parts.size() != 4 || parts[0] != kScheme) {
    problem = "must be pbkdf2-sha256$ITERATIONS$SALT$HASH as `callbridge hash-password` prints it";
    return std::nullopt;
  }
  ParsedHash out;
  if (parts[1].empty() || parts[1].size() > 9 ||
      !std::all_of(parts[1].begin(), parts[1].end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      (out.iterations = std::stoi(std::string(parts[1]))) < kMinIterations) {
    problem = "iterations must be a number of at least " + std::to_string(kMinIterations);
    return std::nullopt;
  }
  auto salt = unbase64(parts[2]);
  auto hash = unbase64(parts[3]);
  if (!salt || salt->size() < 8 || !hash || hash->size() != 32) {
    problem = "salt (8 bytes or more) and hash (32 bytes) must be base64";
    return std::nullopt;
  }
  out.salt = std::move(*salt);
  out.hash = std::move(*hash);
  return out;
}

std::string derive(std::string_view password, const std::string& salt, int iterations) {
  std::string out(32, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(), 32,
                        reinterpret_cast<unsigned char*>(out.data())) != 1)
    throw std::runtime_error("PBKDF2 failed");
  return out;
}

}  // namespace

std::string_view to_string(ConsoleRole role) {
  return role == ConsoleRole::operator_ ? "operator" : "viewer";
}

const ConsoleUser* ConsoleSettings::user(std::string_view name) const {
  for (const auto& u : users)
    if (u.name == name) return &u;
  return nullptr;
}

std::string random_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no randomness");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::string hash_password(std::string_view password, int iterations) {
  unsigned char salt[16];
  if (RAND_bytes(salt, sizeof salt) != 1) throw std::runtime_error("no randomness");
  std::string salt_text(reinterpret_cast<const char*>(salt), sizeof salt);
  std::string hash = derive(password, salt_text, iterations);
  return std::string(kScheme) + "$" + std::to_string(iterations) + "$" + base64(salt, sizeof salt) +
         "$" + base64(reinterpret_cast<const unsigned char*>(hash.data()), hash.size());
}

std::string password_hash_problem(std::string_view stored) {
  std::string problem;
  parse_hash(stored, problem);
  return problem;
}

bool verify_password(std::string_view password, std::string_view stored) {
  std::string problem;
  auto parsed = parse_hash(stored, problem);
  if (!parsed || parsed->iterations > kMaxIterations) return false;
  std::string derived = derive(password, parsed->salt, parsed->iterations);
  return CRYPTO_memcmp(derived.data(), parsed->hash.data(), derived.size()) == 0;
}

std::shared_ptr<const rules::Section> load_console_section(const YAML::Node& node,
                                                           rules::ConfigReader& reader) {
  auto settings = std::make_shared<ConsoleSettings>();
  if (node.IsNull()) return settings;
  if (!reader.expect_map(node, "console")) return nullptr;
  const std::size_t errors = reader.error_count();
  reader.check_keys(node, {"users", "session_minutes"}, "console");
  if (auto n = node["session_minutes"])
    if (auto raw = reader.scalar(n, "console.session_minutes")) {
      // Minutes, fractions allowed: a short expiry is how tests see a session end.
      char* end = nullptr;
      double minutes = std::strtod(raw->c_str(), &end);
      if (raw->empty() || *end != '\0' || !(minutes >= kMinSessionMinutes && minutes <= 10080))
        reader.error(n,
                     "\"console.session_minutes\": must be a number of minutes between 0.05 "
                     "and 10080, got \"" +
                         *raw + "\"");
      else
        settings->session_minutes = minutes;
    }
  if (auto list = node["users"]; list && reader.expect_list(list, "console.users")) {
    for (const auto& item : list) {
      if (!reader.expect_map(item, "console.users")) continue;
      reader.check_keys(item, {"name", "role", "password_hash"}, "console.users");
      ConsoleUser user;
      auto name_node = reader.required(item, "name", "console.users");
      if (name_node)
        if (auto name = reader.string_setting(name_node, "console.users.name")) {
          if (name->empty() || name->size() > 64)
            reader.error(name_node, "\"console.users.name\": must be 1 to 64 characters");
          else if (settings->user(*name))
            reader.error(name_node, "\"console.users.name\": \"" + *name + "\" is listed twice");
          user.name = *name;
        }
      auto role_node = reader.required(item, "role", "console.users");
      if (role_node)
        if (auto role = reader.choice(role_node, "console.users.role", {"viewer", "operator"}))
          user.role = *role == "operator" ? ConsoleRole::operator_ : ConsoleRole::viewer;
      auto hash_node = reader.required(item, "password_hash", "console.users");
      if (hash_node)
        if (auto hash = reader.string_setting(hash_node, "console.users.password_hash")) {
          std::string problem = password_hash_problem(*hash);
          if (!problem.empty())
            reader.error(hash_node, "\"console.users.password_hash\": " + problem);
          user.password_hash = *hash;
        }
      settings->users.push_back(std::move(user));
    }
  }
  if (reader.error_count() != errors) return nullptr;
  return settings;
}

std::string ConsoleSessions::create(const std::string& user, ConsoleRole role,
                                    std::chrono::milliseconds lifetime) {
  std::string token = random_token();
  std::lock_guard lock(mutex_);
  // Forget the expired ones now and then, so abandoned sessions do not pile up.
  auto t = now();
  std::erase_if(sessions_, [&](const auto& entry) { return entry.second.expires <= t; });
  sessions_[token] = ConsoleSession{user, role, random_token(), t + lifetime};
  return token;
}

std::optional<ConsoleSession> ConsoleSessions::find(const std::string& token) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(token);
  if (it == sessions_.end()) return std::nullopt;
  if (it->second.expires <= now()) {
    sessions_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void ConsoleSessions::erase(const std::string& token) {
  std::lock_guard lock(mutex_);
  sessions_.erase(token);
}

void ConsoleSessions::advance(std::chrono::seconds by) {
  std::lock_guard lock(mutex_);
  skew_ += by;
}

std::chrono::seconds SignInLimiter::wait(const std::string& key, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::chrono::seconds(0);
  if (now - it->second.first > window_) {
    entries_.erase(it);
    return std::chrono::seconds(0);
  }
  int over = it->second.failures - free_failures_;
  if (over < 0) return std::chrono::seconds(0);
  auto delay = std::chrono::seconds(1) * (1LL << std::min(over, 20));
  if (delay > max_delay_) delay = max_delay_;
  auto until = it->second.last + delay;
  if (until <= now) return std::chrono::seconds(0);
  return std::chrono::ceil<std::chrono::seconds>(until - now);
}

void SignInLimiter::failed(const std::string& key, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto& e = entries_[key];
  if (e.failures == 0 || now - e.first > window_) {
    e.failures = 0;
    e.first = now;
  }
  ++e.failures;
  e.last = now;
  // Bound the memory an address-spraying client can take.
  if (entries_.size() > 100000) entries_.clear();
}

void SignInLimiter::succeeded(const std::string& key) {
  std::lock_guard lock(mutex_);
  entries_.erase(key);
}

}  // namespace callbridge::bridge
