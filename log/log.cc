#include "log/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

namespace callbridge::log {

namespace {

std::atomic<Level> g_level{Level::info};
std::mutex g_mutex;

std::string_view level_name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
  }
  return "info";
}

// syslog priorities, which journald takes from a `<N>` line prefix (sd-daemon(3)).
int journal_priority(Level level) {
  switch (level) {
    case Level::debug:
      return 7;
    case Level::info:
      return 6;
    case Level::warn:
      return 4;
    case Level::error:
      return 3;
  }
  return 6;
}

// Under systemd the journal stamps time and level itself: `<6>listening port=8080 rules=3`,
// values quoted as JSON strings when they hold spaces, quotes or control characters.
std::string journal_line(Level level, std::string_view message,
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

void emit(Level level, std::string_view message,
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

void set_level(Level level) {
  g_level = level;
}

void write(Level level, std::string_view message,
           std::initializer_list<std::pair<std::string_view, std::string>> fields) {
  if (level < g_level.load()) return;
  emit(level, message, fields, 0);
}

void write_limited(std::string_view key, Level level, std::string_view message,
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
  emit(level, message, fields, suppressed);
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  unsigned long long device = 0, inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == device &&
         static_cast<unsigned long long>(st.st_ino) == inode;
}

}  // namespace callbridge::log
