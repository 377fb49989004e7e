#include "bridge/log.h"

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "bridge/systemd.h"

namespace callbridge::bridge {

namespace {

std::atomic<LogLevel> g_level{LogLevel::info};
std::mutex g_mutex;

std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warn:
      return "warn";
    case LogLevel::error:
      return "error";
  }
  return "info";
}

// syslog priorities, which journald takes from a `<N>` line prefix (sd-daemon(3)).
int journal_priority(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return 7;
    case LogLevel::info:
      return 6;
    case LogLevel::warn:
      return 4;
    case LogLevel::error:
      return 3;
  }
  return 6;
}

// Under systemd the journal stamps time and level itself: `<6>listening port=8080 rules=3`,
// values quoted as JSON strings when they hold spaces, quotes or control characters.
std::string journal_line(LogLevel level, std::string_view message,
                         std::initializer_list<std::pair<std::string_view, std::string>> fields,
                         std::uint64_t suppressed) {
  std::string text = "<" + std::to_string(journal_priority(level)) + ">";
  text += message;
  auto add = [&](std::string_view key, const std::string& value) {
    bool plain = !value.empty();
    for (unsigned char c : value)
      if (c <= ' ' || c == '"' || c == '\\' || c == '=') plain = false;
    text += " ";
    text += key;
    text += "=";
    text += plain ? value
                  : nlohmann::json(value).dump(-1, ' ', false,
                                               nlohmann::json::error_handler_t::replace);
  };
  for (const auto& [key, value] : fields) add(key, value);
  if (suppressed > 0) add("suppressed", std::to_string(suppressed));
  return text + "\n";
}

void write(LogLevel level, std::string_view message,
           std::initializer_list<std::pair<std::string_view, std::string>> fields,
           std::uint64_t suppressed) {
  static const bool to_journal = stderr_is_journal();
  if (to_journal) {
    std::string text = journal_line(level, message, fields, suppressed);
    std::lock_guard lock(g_mutex);
    std::fwrite(text.data(), 1, text.size(), stderr);
    return;
  }
  nlohmann::ordered_json line;
  auto now = std::chrono::system_clock::now();
  line["ts"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  line["level"] = level_name(level);
  line["msg"] = message;
  for (const auto& [key, value] : fields) line[std::string(key)] = value;
  if (suppressed > 0) line["suppressed"] = suppressed;
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(g_mutex);
  std::fwrite(text.data(), 1, text.size(), stderr);
}

}  // namespace

void set_log_level(LogLevel level) {
  g_level = level;
}

void log(LogLevel level, std::string_view message,
         std::initializer_list<std::pair<std::string_view, std::string>> fields) {
  if (level < g_level.load()) return;
  write(level, message, fields, 0);
}

void log_limited(std::string_view key, LogLevel level, std::string_view message,
                 std::initializer_list<std::pair<std::string_view, std::string>> fields,
                 std::chrono::seconds interval) {
  if (level < g_level.load()) return;
  struct Slot {
    std::chrono::steady_clock::time_point last{};
    std::uint64_t suppressed = 0;
  };
  static std::mutex mutex;
  static std::map<std::string, Slot, std::less<>> slots;
  std::uint64_t suppressed = 0;
  {
    std::lock_guard lock(mutex);
    Slot& slot = slots[std::string(key)];
    auto now = std::chrono::steady_clock::now();
    if (slot.last != std::chrono::steady_clock::time_point{} && now - slot.last < interval) {
      ++slot.suppressed;
      return;
    }
    slot.last = now;
    suppressed = std::exchange(slot.suppressed, 0);
  }
  write(level, message, fields, suppressed);
}

}  // namespace callbridge::bridge
