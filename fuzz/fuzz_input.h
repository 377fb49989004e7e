// Helpers shared by the fuzz targets: an input is split into NUL-separated parts, so one seed can
// carry a template and its variables, a pattern and its subject, a header and a body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace callbridge::fuzz {

// The first byte of the input (0 when empty), used to choose a mode or a destination.
inline unsigned char selector(const std::uint8_t* data, std::size_t size) {
  return size > 0 ? data[0] : 0;
}

// The input after the selector byte, split at NUL bytes; always at least `min_parts` parts.
inline std::vector<std::string> parts(const std::uint8_t* data, std::size_t size,
                                      std::size_t min_parts = 1) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!text.empty()) text.remove_prefix(1);
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    std::size_t end = text.find('\0', start);
    out.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  while (out.size() < min_parts) out.emplace_back();
  return out;
}

// Aborts with `what` when `condition` is false, so libFuzzer records the input as a crash.
void check(bool condition, const char* what);

}  // namespace callbridge::fuzz
