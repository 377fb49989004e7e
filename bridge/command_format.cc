#include "bridge/command_format.h"

#include <strings.h>

#include <nlohmann/json.hpp>

namespace callbridge {

namespace {

// POSIX shell single quotes: ' becomes '\''.
std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// PowerShell single quotes: ' becomes ''.
std::string ps_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string render_command(const http::Request& request, CommandFormat format) {
  switch (format) {
    case CommandFormat::curl: {
      std::string out = "curl -sS -X " + request.method + " " + shell_quote(request.url);
      for (const auto& [name, value] : request.headers)
        out += " \\\n  -H " + shell_quote(name + ": " + value);
      if (!request.body.empty()) out += " \\\n  --data-binary " + shell_quote(request.body);
      out += " \\\n  --max-time " + std::to_string(request.timeout.count() / 1000);
      return out;
    }
    case CommandFormat::powershell: {
      std::string content_type;
      std::string headers;
      for (const auto& [name, value] : request.headers) {
        if (name.size() == 12 && strncasecmp(name.c_str(), "content-type", 12) == 0) {
          content_type = value;
          continue;
        }
        headers += (headers.empty() ? "" : "; ") + ps_quote(name) + " = " + ps_quote(value);
      }
      std::string out = "Invoke-RestMethod -Method " + request.method + " -Uri " +
                        ps_quote(request.url) + " -TimeoutSec " +
                        std::to_string(request.timeout.count() / 1000);
      if (!headers.empty()) out += " `\n  -Headers @{ " + headers + " }";
      if (!content_type.empty()) out += " `\n  -ContentType " + ps_quote(content_type);
      if (!request.body.empty())
        out +=
            " `\n  -Body ([System.Text.Encoding]::UTF8.GetBytes(" + ps_quote(request.body) + "))";
      return out;
    }
    case CommandFormat::json: {
      nlohmann::ordered_json j;
      j["method"] = request.method;
      j["url"] = request.url;
      j["headers"] = nlohmann::ordered_json::object();
      for (const auto& [name, value] : request.headers) j["headers"][name] = value;
      j["body"] = request.body;
      j["timeout"] = request.timeout.count() / 1000;
      return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    }
  }
  return {};
}

}  // namespace callbridge
