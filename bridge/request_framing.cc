#include "bridge/request_framing.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>

namespace callbridge::bridge {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), ::tolower);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// The end of the line starting at `from` (the index of its '\n'), or npos.
std::size_t line_end(std::string_view buffer, std::size_t from) {
  return buffer.find('\n', from);
}

Framing rejected(int status, std::string code, std::string message) {
  Framing f;
  f.state = Framing::State::rejected;
  f.status = status;
  f.code = std::move(code);
  f.message = std::move(message);
  return f;
}

Framing too_large() {
  return rejected(413, "too_large", "the request body is larger than server.max_body_bytes");
}

// Frames a chunked body starting at `at`; `length` is set to the end of the trailers.
Framing frame_chunked(std::string_view buffer, std::size_t at, std::size_t max_body,
                      std::size_t max_header) {
  std::size_t body = 0;
  for (;;) {
    std::size_t eol = line_end(buffer, at);
    if (eol == std::string_view::npos) {
      if (buffer.size() - at > 1024) return rejected(400, "bad_request", "malformed chunk size");
      return {};
    }
    std::string_view size_line = trim(buffer.substr(at, eol - at));
    size_line = size_line.substr(0, size_line.find(';'));
    size_line = trim(size_line);
    if (size_line.empty() || size_line.size() > 8 ||
        size_line.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos)
      return rejected(400, "bad_request", "malformed chunk size");
    std::size_t size = std::stoul(std::string(size_line), nullptr, 16);
    at = eol + 1;
    if (size == 0) break;
    body += size;
    if (body > max_body) return too_large();
    if (buffer.size() < at + size + 1) return {};
    at += size;
    if (buffer[at] == '\r') {
      if (buffer.size() < at + 2) return {};
      ++at;
    }
    if (buffer[at] != '\n') return rejected(400, "bad_request", "malformed chunk");
    ++at;
  }
  // Trailers, up to an empty line.
  const std::size_t trailers = at;
  for (;;) {
    std::size_t eol = line_end(buffer, at);
    if (eol == std::string_view::npos) {
      if (buffer.size() - trailers > max_header)
        return rejected(431, "headers_too_large", "the chunked trailers are too large");
      return {};
    }
    bool empty = trim(buffer.substr(at, eol - at)).empty();
    at = eol + 1;
    if (empty) break;
  }
  Framing f;
  f.state = Framing::State::complete;
  f.length = at;
  return f;
}

}  // namespace

Framing frame_request(std::string_view buffer, std::size_t max_body, std::size_t max_header) {
  // The headers end at the first empty line.
  std::size_t at = 0;
  std::size_t head_end = std::string_view::npos;
  while (true) {
    std::size_t eol = line_end(buffer, at);
    if (eol == std::string_view::npos) break;
    if (at > 0 && (eol == at || (eol == at + 1 && buffer[at] == '\r'))) {
      head_end = eol + 1;
      break;
    }
    at = eol + 1;
  }
  if (head_end == std::string_view::npos) {
    if (buffer.size() > max_header)
      return rejected(431, "headers_too_large", "the request headers are too large");
    return {};
  }
  if (head_end > max_header)
    return rejected(431, "headers_too_large", "the request headers are too large");

  std::optional<std::string> content_length;
  bool chunked = false;
  bool transfer_encoding = false;
  std::size_t expect_at = std::string_view::npos;
  std::size_t line = line_end(buffer, 0) + 1;  // past the request line
  while (line < head_end) {
    std::size_t eol = line_end(buffer, line);
    std::string_view header = buffer.substr(line, eol - line);
    line = eol + 1;
    std::size_t colon = header.find(':');
    if (colon == std::string_view::npos) continue;
    const std::size_t header_at = line - header.size() - 1;
    std::string name = lower(trim(header.substr(0, colon)));
    std::string_view value = trim(header.substr(colon + 1));
    if (name == "content-length") {
      if (value.empty() || value.size() > 18 ||
          value.find_first_not_of("0123456789") != std::string_view::npos)
        return rejected(400, "bad_request", "Content-Length must be a decimal number");
      if (content_length && *content_length != value)
        return rejected(400, "bad_request", "conflicting Content-Length headers");
      content_length = std::string(value);
    } else if (name == "transfer-encoding") {
      if (transfer_encoding || lower(value) != "chunked")
        return rejected(501, "not_implemented", "only Transfer-Encoding: chunked is supported");
      transfer_encoding = chunked = true;
    } else if (name == "expect" && lower(value) == "100-continue") {
      expect_at = header_at;
    }
  }
  if (chunked && content_length)
    return rejected(400, "bad_request", "Content-Length and Transfer-Encoding together");
  Framing waiting;
  if (buffer.size() == head_end) waiting.expect_continue_at = expect_at;
  if (chunked) {
    Framing f = frame_chunked(buffer, head_end, max_body, max_header);
    return f.state == Framing::State::incomplete ? waiting : f;
  }
  std::size_t length = content_length ? std::stoull(*content_length) : 0;
  if (length > max_body) return too_large();
  if (buffer.size() < head_end + length) return waiting;
  Framing f;
  f.state = Framing::State::complete;
  f.length = head_end + length;
  return f;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 480:
      return "Temporarily Unavailable";
    case 481:
      return "Call/Transaction Does Not Exist";
    case 486:
      return "Busy Here";
    case 487:
      return "Request Terminated";
    case 488:
      return "Not Acceptable Here";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      break;
  }
  if (status < 200) return "Informational";
  if (status < 300) return "Success";
  if (status < 400) return "Redirection";
  if (status < 500) return "Client Error";
  return "Server Error";
}

}  // namespace callbridge::bridge
