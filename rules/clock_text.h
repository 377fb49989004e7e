// Times as the bridge writes them in history and APIs.
#pragma once

#include <cstdint>
#include <string>

namespace callbridge::rules {

// "2026-11-22T10:15:00.123Z" for milliseconds since the Unix epoch.
std::string iso8601_ms(std::int64_t unix_ms);

}  // namespace callbridge::rules
