// The one logger of the bridge and its connectors: structured logs on stderr, one JSON object per
// line, or, when stderr is the journal (under systemd), one text line whose `<N>` prefix gives
// journald the level. Callers pass redacted text.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace callbridge::log {

enum class Level { debug, info, warn, error };

void set_level(Level level);
void write(Level level, std::string_view message,
           std::initializer_list<std::pair<std::string_view, std::string>> fields = {});

// Logs at most once per `interval` per key; counts what it suppressed.
void write_limited(std::string_view key, Level level, std::string_view message,
                   std::initializer_list<std::pair<std::string_view, std::string>> fields = {},
                   std::chrono::seconds interval = std::chrono::seconds(10));

// True when stderr is the stream systemd connected to journald: $JOURNAL_STREAM names
// stderr's device and inode (systemd.exec(5)).
bool stderr_is_journal();

}  // namespace callbridge::log
