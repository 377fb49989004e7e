// Structured logs on stderr: one JSON object per line, or, when stderr is the journal (under
// systemd), one text line whose `<N>` prefix gives journald the level. Callers pass redacted text.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace callbridge::bridge {

enum class LogLevel { debug, info, warn, error };

void set_log_level(LogLevel level);
void log(LogLevel level, std::string_view message,
         std::initializer_list<std::pair<std::string_view, std::string>> fields = {});

// Logs at most once per `interval` per key; counts what it suppressed.
void log_limited(std::string_view key, LogLevel level, std::string_view message,
                 std::initializer_list<std::pair<std::string_view, std::string>> fields = {},
                 std::chrono::seconds interval = std::chrono::seconds(10));

}  // namespace callbridge::bridge
