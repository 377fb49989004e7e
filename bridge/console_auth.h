// Who may use the web console: the `console:` section (users with roles and salted password
// hashes), the sessions of signed-in users with their CSRF tokens, and the limiter that slows
// repeated failed sign-ins. Nothing here touches HTTP; bridge/console_routes.h does.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/config.h"

namespace YAML {
class Node;
}

namespace callbridge::rules {
class ConfigReader;
}

namespace callbridge::bridge {

enum class ConsoleRole { viewer, operator_ };
std::string_view to_string(ConsoleRole role);

struct ConsoleUser {
  std::string name;
  ConsoleRole role = ConsoleRole::viewer;
  std::string password_hash;  // pbkdf2-sha256$ITERATIONS$SALT$HASH (base64)
};

// The shortest session: three seconds.
inline constexpr double kMinSessionMinutes = 0.05;

// The `console:` section: who may sign in, and for how long a session lasts.
struct ConsoleSettings final : rules::Section {
  std::vector<ConsoleUser> users;
  double session_minutes = 480;  // fractions allowed (0.05, three seconds, for tests)
  const ConsoleUser* user(std::string_view name) const;
  std::chrono::milliseconds session_lifetime() const {
    return std::chrono::milliseconds(static_cast<std::int64_t>(session_minutes * 60000.0));
  }
};

std::shared_ptr<const rules::Section> load_console_section(const YAML::Node& node,
                                                           rules::ConfigReader& reader);

// PBKDF2-HMAC-SHA256 with a random 16-byte salt, written as
// `pbkdf2-sha256$ITERATIONS$SALT$HASH` (salt and hash in base64), so the cost can rise later
// without invalidating stored hashes.
inline constexpr int kDefaultPasswordIterations = 310000;
std::string hash_password(std::string_view password, int iterations = kDefaultPasswordIterations);
// Whether `password` matches `stored` (compared in constant time); false for a malformed hash.
bool verify_password(std::string_view password, std::string_view stored);
// Why `stored` is not a hash hash_password() writes; empty when it is one.
std::string password_hash_problem(std::string_view stored);

// 32 random bytes as 64 hex digits (OpenSSL's RAND_bytes).
std::string random_token();

struct ConsoleSession {
  std::string user;
  ConsoleRole role = ConsoleRole::viewer;
  std::string csrf;  // sent back in X-CSRF-Token on every state-changing request
  std::chrono::steady_clock::time_point expires;
};

// Signed-in users by session token, in memory: a restart signs everyone out.
class ConsoleSessions {
 public:
  using Clock = std::chrono::steady_clock;
  std::string create(const std::string& user, ConsoleRole role, std::chrono::milliseconds lifetime);
  // The live session of `token`; expired ones are forgotten.
  std::optional<ConsoleSession> find(const std::string& token);
  void erase(const std::string& token);
  // For tests: pretend `by` has passed.
  void advance(std::chrono::seconds by);

 private:
  Clock::time_point now() const { return Clock::now() + skew_; }
  std::mutex mutex_;
  std::map<std::string, ConsoleSession, std::less<>> sessions_;
  Clock::duration skew_{};
};

// Failed sign-ins per key (the client's address and the user name, each counted): after
// `free_failures` within `window`, each further attempt must wait, doubling from 1 s up to
// `max_delay`, until a success or the window passes.
class SignInLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit SignInLimiter(int free_failures = 5,
                         std::chrono::seconds window = std::chrono::minutes(15),
                         std::chrono::seconds max_delay = std::chrono::minutes(5))
      : free_failures_(free_failures), window_(window), max_delay_(max_delay) {}
  // Zero when `key` may try now, else how long it must wait.
  std::chrono::seconds wait(const std::string& key, Clock::time_point now = Clock::now());
  void failed(const std::string& key, Clock::time_point now = Clock::now());
  void succeeded(const std::string& key);

 private:
  struct Entry {
    int failures = 0;
    Clock::time_point first, last;
  };
  std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> entries_;
  int free_failures_;
  std::chrono::seconds window_, max_delay_;
};

}  // namespace callbridge::bridge
