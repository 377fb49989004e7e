#include "http/http_client.h"

#include <httplib.h>

#include <deque>
#include <map>
#include <mutex>
#include <optional>

namespace callbridge::http {

namespace {

using Clock = std::chrono::steady_clock;

struct Url {
  std::string scheme, host, path;
  int port = 0;
  std::string origin() const { return scheme + "://" + host + ":" + std::to_string(port); }
};

std::optional<Url> parse_url(const std::string& text) {
  Url url;
  std::size_t rest;
  if (text.rfind("http://", 0) == 0) {
    url.scheme = "http", url.port = 80, rest = 7;
  } else if (text.rfind("https://", 0) == 0) {
    url.scheme = "https", url.port = 443, rest = 8;
  } else {
    return std::nullopt;
  }
  std::size_t path = text.find_first_of("/?#", rest);
  std::string authority =
      text.substr(rest, path == std::string::npos ? std::string::npos : path - rest);
  url.path = path == std::string::npos ? "/" : text.substr(path);
  if (url.path.front() != '/') url.path = "/" + url.path;
  if (auto hash = url.path.find('#'); hash != std::string::npos) url.path.resize(hash);
  if (authority.empty() || authority.find('@') != std::string::npos) return std::nullopt;
  std::size_t colon = authority.rfind(':');
  if (authority.front() == '[') {  // IPv6 literal
    std::size_t close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    url.host = authority.substr(1, close - 1);
    colon = authority.find(':', close);
  } else {
    url.host = authority.substr(0, colon);
  }
  if (colon != std::string::npos) {
    std::string port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    url.port = std::stoi(port);
    if (url.port <= 0 || url.port > 65535) return std::nullopt;
  }
  if (url.host.empty()) return std::nullopt;
  for (char& c : url.path) {
    if (static_cast<unsigned char>(c) <= 0x20) return std::nullopt;  // spaces, CR/LF: never sent
  }
  return url;
}

// Bytes a request line cannot carry raw are percent-encoded; everything else is sent as rendered
// (templates already encoded variable values).
std::string wire_path(const std::string& path) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (c >= 0x80 || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' ||
        c == '{' || c == '|' || c == '}') {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool supported_method(const std::string& m) {
  return m == "GET" || m == "POST" || m == "PUT" || m == "PATCH" || m == "DELETE";
}

template <class Duration>
std::pair<time_t, time_t> sec_usec(Duration d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us < 1000) us = 1000;
  return {static_cast<time_t>(us / 1000000), static_cast<time_t>(us % 1000000)};
}

}  // namespace

std::string_view to_string(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::response:
      return "response";
    case OutcomeKind::timeout:
      return "timeout";
    case OutcomeKind::connect_error:
      return "connect_error";
    case OutcomeKind::tls_error:
      return "tls_error";
    case OutcomeKind::too_large:
      return "too_large";
    case OutcomeKind::invalid_request:
      return "invalid_request";
    case OutcomeKind::io_error:
      return "io_error";
  }
  return "unknown";
}

// A kept-alive connection idle for longer is not reused: servers close idle connections (5 s
// is common: Apache's KeepAliveTimeout, cpp-httplib's), and a request written to one that the
// server just closed fails after it may have been sent, which makes a POST `unknown`.
constexpr auto kIdleReuse = std::chrono::seconds(2);

struct HttpClient::Pool {
  struct Idle {
    std::unique_ptr<httplib::Client> client;
    Clock::time_point since;
  };
  ClientOptions options;
  std::mutex mutex;
  std::map<std::string, std::deque<Idle>> idle;  // per origin, the most recently used last

  std::unique_ptr<httplib::Client> take(const Url& url) {
    {
      std::lock_guard lock(mutex);
      auto& list = idle[url.origin()];
      if (!list.empty() && Clock::now() - list.back().since > kIdleReuse)
        list.clear();  // the most recent is too old: so are the others
      if (!list.empty()) {
        auto client = std::move(list.back().client);
        list.pop_back();
        return client;
      }
    }
    std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
    auto client = std::make_unique<httplib::Client>(url.scheme + "://" + host + ":" +
                                                    std::to_string(url.port));
    client->set_tcp_nodelay(true);
    client->set_keep_alive(true);
    client->set_follow_location(false);
    client->set_url_encode(false);
    if (url.scheme == "https") {
      client->enable_server_certificate_verification(options.verify_tls);
      if (!options.ca_file.empty())
        client->set_ca_cert_path(options.ca_file);
      else
        client->set_ca_cert_path("/etc/ssl/certs/ca-certificates.crt");
    }
    return client;
  }

  void give_back(const Url& url, std::unique_ptr<httplib::Client> client) {
    std::lock_guard lock(mutex);
    auto& list = idle[url.origin()];
    auto now = Clock::now();
    // Too old to be reused: closed now rather than held open until a burst reaches them.
    while (!list.empty() && now - list.front().since > kIdleReuse) list.pop_front();
    if (list.size() >= options.max_idle_per_origin) list.pop_front();  // the oldest goes
    list.push_back({std::move(client), now});
  }
};

HttpClient::HttpClient(ClientOptions options) : pool_(std::make_unique<Pool>()) {
  pool_->options = std::move(options);
}

HttpClient::~HttpClient() = default;

Outcome HttpClient::perform(const Request& request) {
  auto started = Clock::now();
  auto deadline = started + request.timeout;
  Outcome out;
  auto finish = [&]() -> Outcome {
    out.latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    return std::move(out);
  };

  auto url = parse_url(request.url);
  if (!url || !supported_method(request.method)) {
    out.kind = OutcomeKind::invalid_request;
    out.error = !url ? "invalid URL" : "unsupported method " + request.method;
    return finish();
  }
  for (const auto& [name, value] : request.headers) {
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      out.kind = OutcomeKind::invalid_request;
      out.error = "header " + name + " contains CR, LF or NUL";
      return finish();
    }
  }

  std::unique_ptr<httplib::Client> client = pool_->take(*url);
  auto [sec, usec] = sec_usec(request.timeout);
  client->set_connection_timeout(sec, usec);
  client->set_read_timeout(sec, usec);
  client->set_write_timeout(sec, usec);

  httplib::Request req;
  req.method = request.method;
  req.path = wire_path(url->path);
  for (const auto& [name, value] : request.headers) req.headers.emplace(name, value);
  req.body = request.body;
  bool timed_out = false, too_large = false;
  std::size_t cap = pool_->options.max_response_bytes;
  std::string body;
  req.content_receiver = [&](const char* data, std::size_t length, uint64_t, uint64_t) {
    if (Clock::now() > deadline) {
      timed_out = true;
      return false;
    }
    if (body.size() + length > cap) {
      too_large = true;
      return false;
    }
    body.append(data, length);
    return true;
  };
  req.progress = [&](uint64_t, uint64_t) {
    if (Clock::now() > deadline) timed_out = true;
    return !timed_out;
  };

  httplib::Result result = client->send(req);
  bool past_deadline = Clock::now() > deadline;
  if (result) {
    out.kind = OutcomeKind::response;
    out.status = result->status;
    out.body = std::move(body);
    out.maybe_sent = true;
    for (const auto& [name, value] : result->headers) out.headers.emplace_back(name, value);
    if (past_deadline) {
      // The answer arrived, but after the budget: the rule's timeout is a promise to the caller.
      out.kind = OutcomeKind::timeout;
      out.error = "timed out after " + std::to_string(request.timeout.count()) + " ms";
      return finish();
    }
    pool_->give_back(*url, std::move(client));
    return finish();
  }

  httplib::Error error = result.error();
  out.maybe_sent = true;
  std::string where = url->host + ":" + std::to_string(url->port);
  switch (error) {
    case httplib::Error::Connection:
    case httplib::Error::BindIPAddress:
      out.kind = past_deadline ? OutcomeKind::timeout : OutcomeKind::connect_error;
      out.maybe_sent = false;
      out.error = (past_deadline ? "connect timed out to " : "cannot connect to ") + where;
      break;
    case httplib::Error::ConnectionTimeout:
      out.kind = OutcomeKind::timeout;
      out.maybe_sent = false;
      out.error = "connect timed out to " + where;
      break;
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
      out.kind = OutcomeKind::tls_error;
      out.maybe_sent = false;
      out.error = "TLS failure with " + where + ": " + httplib::to_string(error);
      break;
    case httplib::Error::Canceled:
      if (too_large) {
        out.kind = OutcomeKind::too_large;
        out.error = "response larger than " + std::to_string(cap) + " bytes";
      } else {
        out.kind = OutcomeKind::timeout;
        out.error = "timed out after " + std::to_string(request.timeout.count()) + " ms";
      }
      break;
    default:
      if (past_deadline || timed_out) {
        out.kind = OutcomeKind::timeout;
        out.error = "timed out after " + std::to_string(request.timeout.count()) + " ms";
      } else {
        out.kind = OutcomeKind::io_error;
        out.error = httplib::to_string(error) + " with " + where;
      }
      break;
  }
  return finish();
}

}  // namespace callbridge::http
