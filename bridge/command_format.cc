#include "bridge/command_format.h"

#include <strings.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <sstream>

#include "rules/action.h"
#include "rules/config_reader.h"

namespace callbridge {

namespace {

// A byte a terminal acts on, or that the indented display of a command would change.
bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

std::string hex_byte(unsigned char c) {
  const char* digits = "0123456789abcdef";
  return {digits[c >> 4], digits[c & 15]};
}

// POSIX shell single quotes: ' becomes '\''. A string with control characters (which a
// terminal would act on, or which the indented display would change) is written as $'...'
// with \n, \t and \xHH escapes (bash, zsh, ksh).
std::string shell_quote(std::string_view s) {
  bool control = false;
  for (char c : s) control = control || is_control(static_cast<unsigned char>(c));
  if (control) {
    std::string out = "$'";
    for (char c : s) {
      auto u = static_cast<unsigned char>(c);
      if (c == '\n')
        out += "\\n";
      else if (c == '\t')
        out += "\\t";
      else if (is_control(u))
        out += "\\x" + hex_byte(u);
      else if (c == '\'' || c == '\\')
        out += std::string("\\") + c;
      else
        out += c;
    }
    return out + "'";
  }
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Length of the valid UTF-8 sequence at `s[i]`, 0 when the bytes there are not one.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto u = static_cast<unsigned char>(s[i]);
  std::size_t n = u < 0x80 ? 1 : (u >> 5) == 6 ? 2 : (u >> 4) == 14 ? 3 : (u >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return 0;
  std::uint32_t cp = n == 1 ? u : u & (0x7f >> n);
  for (std::size_t k = 1; k < n; ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// PowerShell. Single quotes where they can be: PowerShell takes U+2018, U+2019, U+201A and
// U+201B for single quotes too, and each quote character is doubled to stand for itself. A
// string with control characters (line breaks included, which the indented display would
// change) or bytes that are not UTF-8 goes in double quotes with backtick escapes instead; there
// `, $ and the double quotes (", U+201C, U+201D, U+201E) are escaped with a backtick.
std::string ps_quote(std::string_view s) {
  bool plain = true;
  for (std::size_t i = 0; plain && i < s.size();) {
    std::size_t n = utf8_length(s, i);
    plain = n > 1 || (n == 1 && !is_control(static_cast<unsigned char>(s[i])));
    i += n;
  }
  if (plain) {
    std::string out = "'";
    for (std::size_t i = 0; i < s.size();) {
      std::size_t n = utf8_length(s, i);
      std::string_view c = s.substr(i, n);
      out += c;
      if (c == "'" || c == "\u2018" || c == "\u2019" || c == "\u201a" || c == "\u201b") out += c;
      i += n;
    }
    return out + "'";
  }
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_length(s, i);
    if (n == 0) {
      out += "$([char]0xfffd)";
      ++i;
      continue;
    }
    std::string_view c = s.substr(i, n);
    i += n;
    if (c == "`" || c == "$" || c == "\"" || c == "\u201c" || c == "\u201d" || c == "\u201e") {
      out += "`";
      out += c;
    } else if (c == "\n") {
      out += "`n";
    } else if (c == "\r") {
      out += "`r";
    } else if (c == "\t") {
      out += "`t";
    } else if (c == std::string_view("\0", 1)) {
      out += "`0";
    } else if (n == 1 && is_control(static_cast<unsigned char>(c[0]))) {
      out += "$([char]0x" + hex_byte(static_cast<unsigned char>(c[0])) + ")";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string render_command(const http::Request& request, CommandFormat format) {
  switch (format) {
    case CommandFormat::curl: {
      std::string out = "curl -sS -X " + request.method + " " + shell_quote(request.url);
      for (const auto& [name, value] : request.headers)
        out += " \\\n  -H " + shell_quote(name + ": " + value);
      if (!request.body.empty()) out += " \\\n  --data-raw " + shell_quote(request.body);
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

namespace {

std::string indent(const std::string& text, const std::string& prefix) {
  std::string out = prefix;
  for (char c : text) {
    out += c;
    if (c == '\n') out += prefix;
  }
  return out;
}

}  // namespace

void print_rule_outcome(std::ostream& out, const rules::RuleOutcome& o, const rules::Config& config,
                        CommandFormat format) {
  out << "-- rule " << o.rule << ": "
      << (o.status == rules::RuleStatus::skipped && !o.request ? "skipped, " : "runs, ") << o.gate
      << "\n";
  for (const auto& rule : config.rules->all())
    if (rule.name == o.rule && rule.action)
      out << "   " << rule.action_key << ": " << rule.action->describe() << "\n";
  bool http = o.request && rules::is_http_url(o.request->url);
  if (o.request && o.request->url.rfind("response://", 0) == 0)
    out << "   local response (no request is sent)\n";
  else if (http)
    out << indent(render_command(*o.request, format), "   ") << "\n";
  if (!o.undefined.empty()) {
    out << "   warning: undefined variables rendered empty:";
    for (const auto& name : o.undefined) out << " {" << name << "}";
    out << "\n";
  }
  if (o.response) {
    const auto& r = *o.response;
    double ms = static_cast<double>(r.latency.count()) / 1000.0;
    std::ostringstream line;
    line.setf(std::ios::fixed);
    line.precision(1);
    if (r.kind == http::OutcomeKind::response) {
      line << "   -> " << r.status << " in " << ms
           << " ms: " << config.secrets->redact(r.body.substr(0, 300))
           << (r.body.size() > 300 ? "..." : "");
    } else {
      line << "   -> " << o.error << " after " << ms << " ms";
    }
    out << line.str() << "\n";
  } else if (o.request && !o.sent && o.error.empty()) {
    out << "   -> not sent (dry run; add --send to perform)\n";
  }
  if (!o.error.empty() && o.status != rules::RuleStatus::http_error &&
      (!o.response || o.response->kind == http::OutcomeKind::response))
    out << "   error: " << o.error << "\n";
  for (const auto& [name, value] : o.extracted)
    out << "   extracted " << name << "=" << config.secrets->redact(value) << "\n";
}

}  // namespace callbridge
